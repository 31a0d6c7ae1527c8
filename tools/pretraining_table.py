r"""Pre-training runs side by side by their ITM objective (issue #33), read from the runs' files.

  python tools/pretraining_table.py --runs runs/pre_a,runs/pre_b \
      --output_json bench/results/demo_pretraining_itm_development.json

Per run: how its ITM was trained (pipeline pairs or in-step groups of K negatives, the loss, the
ITM loss weight, one query in --group_every, --itm_unmasked, the steps) from its run_config.json,
and the held-out figures tools/pretraining_itm.py wrote to RUN/pretraining_itm.json (ITM accuracy
on the paper's random pairs, MLM accuracy). Prints a Markdown table; --output_json also writes
the rows with the command that scored each run.
"""

from __future__ import annotations

import os

from absl import app
from absl import flags

from kaleido.utils import cli

_RUNS = flags.DEFINE_list("runs", [], "Pre-training --model_dir folders, each scored by "
                          "tools/pretraining_itm.py --output_json RUN/pretraining_itm.json.")
_OUTPUT_JSON = flags.DEFINE_string("output_json", "", "Also write the rows here as JSON.")

SCORES_NAME = "pretraining_itm.json"


def row(run_dir: str) -> dict:
  """The ITM objective of `run_dir` and its held-out figures."""
  from kaleido import config as config_lib  # pylint: disable=g-import-not-at-top
  from kaleido.utils import files  # pylint: disable=g-import-not-at-top
  run = config_lib.load(run_dir)
  pretraining = run.task.pretraining
  scores = files.read_json(os.path.join(run_dir, SCORES_NAME),
                           f"score the run with python tools/pretraining_itm.py --run {run_dir} "
                           f"--eval_data FOLDER --output_json {run_dir}/{SCORES_NAME}")
  values = scores["values"]
  return {
      "run": run_dir, "train_steps": run.training.train_steps, "seed": run.training.seed,
      "negatives_per_positive": pretraining.itm_negatives_per_positive,
      "itm_loss": pretraining.itm_loss, "itm_weight": pretraining.weight("itm"),
      "group_every": pretraining.itm_group_every, "itm_unmasked": pretraining.itm_unmasked,
      "eval_data": scores["eval_data"], "itm_accuracy": values["itm_accuracy"],
      "mlm_accuracy": values["mlm_accuracy"],
      "command": (f"python tools/pretraining_itm.py --run {scores['run']} --eval_data "
                  f"{scores['eval_data']} --batches {scores['batches']}")}


def _objective(entry: dict) -> str:
  k = entry["negatives_per_positive"]
  parts = [f"groups K = {k}, {entry['itm_loss']}" if k else "pipeline pairs, binary"]
  if entry["itm_weight"] != 1.0:
    parts.append(f"ITM weight {entry['itm_weight']:g}")
  if entry["group_every"] > 1:
    parts.append(f"one query in {entry['group_every']}")
  if entry["itm_unmasked"]:
    parts.append("unmasked pass")
  return ", ".join(parts)


@cli.user_errors_as_messages
def main(argv):
  del argv
  rows = [row(run_dir) for run_dir in _RUNS.value]
  print("| run | ITM objective | steps | development ITM, paper's random pairs | MLM accuracy |")
  print("|---|---|---|---|---|")
  for entry in rows:
    print(f"| {entry['run']} | {_objective(entry)} | {entry['train_steps']:,} | "
          f"{100 * entry['itm_accuracy']:.1f}% | {100 * entry['mlm_accuracy']:.1f}% |")
  if _OUTPUT_JSON.value:
    from kaleido.utils import files  # pylint: disable=g-import-not-at-top
    files.write_json(_OUTPUT_JSON.value, {"runs": rows})


if __name__ == "__main__":
  app.run(main)
