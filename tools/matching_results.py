r"""bench/results/demo_matching.json from the demo pipeline's own evaluation files (issue #33).

  python tools/matching_results.py --recipe=chosen: --recipe=paper:_paper --seeds=0,1,2 \
      --output=bench/results/demo_matching.json

For each recipe (NAME:SUFFIX, the suffix tools/run_demo.sh gives its folders: "" for the demo
flag files, _paper for RECIPE=paper) and seed it reads runs/demo_eval<SUFFIX>[_seed<N>]/: the
sample-100 and full-gallery retrieval JSON files of evaluate.py, caption.json, category.json,
pretraining_itm.json (tools/pretraining_itm.py) and commands.txt, and writes one run per (seed,
recipe) with the figures as the files hold them (Rank@K in percent), then prints the means.
Seeds without a finished pipeline (no pretraining_itm.json, its last file) are named and left out.
"""

from __future__ import annotations

import os
import sys

from absl import app
from absl import flags

from kaleido.evaluation import run_results
from kaleido.utils import cli
from kaleido.utils import files

_RECIPES = flags.DEFINE_multi_string("recipe", ["chosen:", "paper:_paper"],
                                     "NAME:SUFFIX of a recipe's run_demo.sh folders.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Pipeline seeds.")
_RUNS_DIR = flags.DEFINE_string("runs_dir", "runs", "Where run_demo.sh's folders are.")
_OUTPUT = flags.DEFINE_string("output", "bench/results/demo_matching.json", "The JSON to write.")


def _finished_runs(name: str, suffix: str, seeds: list[int]) -> list[dict]:
  """The runs of one recipe's finished pipelines; the unfinished seeds are named and skipped."""
  finished, note = run_results.finished_seeds(_RUNS_DIR.value, name, suffix, seeds)
  if note:
    print(note, file=sys.stderr)
  runs = []
  for seed in finished:
    figures = run_results.run_figures(run_results.eval_folder(_RUNS_DIR.value, suffix, seed))
    del figures["subcategory_accuracy"]  # not in issue #33's shape
    runs.append({"seed": seed, "recipe": name, **figures})
  return runs


def summary(runs: list[dict]) -> str:
  """One recipe's means over its runs, one line."""

  def mean(pick) -> float:
    return sum(pick(run) for run in runs) / len(runs)

  def r_at_1(pick) -> str:  # ITR / TIR
    return " / ".join(f"{mean(lambda run: pick(run)[d]['R@1']):.2f}" for d in ("itr", "tir"))

  itm = 100 * mean(lambda run: run["pretrain_development_itm_accuracy"])
  parts = [f"pre-training ITM {itm:.1f}%",
           f"sample-100 ITR / TIR R@1 {r_at_1(lambda run: run['sample100'])}"]
  for name in run_results.FULL:
    if all(name in run["full"] for run in runs):
      parts.append(f"full {name} {r_at_1(lambda run, name=name: run['full'][name])}")
  for name in ("caption_cider", "category_accuracy"):
    if all(run[name] is not None for run in runs):
      parts.append(f"{name} {mean(lambda run, name=name: run[name]):.2f}")
  seeds = ", ".join(str(run["seed"]) for run in runs)
  return f"{runs[0]['recipe']}, seeds {seeds}: " + ", ".join(parts)


@cli.user_errors_as_messages
def main(argv):
  del argv
  seeds = list(map(int, _SEEDS.value))
  by_recipe = [_finished_runs(*recipe.partition(":")[::2], seeds) for recipe in _RECIPES.value]
  os.makedirs(os.path.dirname(os.path.abspath(_OUTPUT.value)), exist_ok=True)
  files.write_json(_OUTPUT.value, {"runs": [run for runs in by_recipe for run in runs]})
  for runs in by_recipe:
    print(summary(runs))


if __name__ == "__main__":
  app.run(main)
