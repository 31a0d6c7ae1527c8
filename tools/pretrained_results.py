r"""bench/results/demo_pretrained.json from the demo pipeline's own evaluation files (issue #34).

  python tools/pretrained_results.py --start=minilm:_bert_paper --start=random:_paper \
      --seeds=0,1,2 --output=bench/results/demo_pretrained.json

For each start (NAME:SUFFIX, the suffix tools/run_demo.sh gives its folders: _bert_paper for
BERT_INIT=all-MiniLM-L6-v2 RECIPE=paper, _paper for RECIPE=paper from random weights) and seed it
reads runs/demo_eval<SUFFIX>[_seed<N>]/ (kaleido.evaluation.run_results), writes one run per
(start, seed) with the figures as the files hold them, and prints each start's means. Seeds
without a finished pipeline are named and left out.
"""

from __future__ import annotations

import os
import sys

from absl import app
from absl import flags

from kaleido.evaluation import run_results
from kaleido.utils import cli
from kaleido.utils import files

_STARTS = flags.DEFINE_multi_string("start", ["minilm:_bert_paper", "random:_paper"],
                                    "NAME:SUFFIX of a start's run_demo.sh folders.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Pipeline seeds.")
_RUNS_DIR = flags.DEFINE_string("runs_dir", "runs", "Where run_demo.sh's folders are.")
_OUTPUT = flags.DEFINE_string("output", "bench/results/demo_pretrained.json",
                              "The JSON to write.")

FIGURES = ("pretrain_development_itm_accuracy", "itr_R@1", "tir_R@1", "caption_cider",
           "subcategory_accuracy")


def run_entry(start: str, seed: int, folder: str) -> dict:
  """One run of issue #34's shape from a run_demo.sh evaluation folder."""
  figures = run_results.run_figures(folder)
  sample100 = figures["sample100"] or {}
  return {"start": start, "seed": seed, "commands": figures["commands"],
          "pretrain_development_itm_accuracy": figures["pretrain_development_itm_accuracy"],
          "itr_R@1": sample100.get("itr", {}).get("R@1"),
          "tir_R@1": sample100.get("tir", {}).get("R@1"),
          "caption_cider": figures["caption_cider"],
          "subcategory_accuracy": figures["subcategory_accuracy"]}


def means(runs: list[dict], start: str) -> dict[str, float | None]:
  """Each figure's mean over `start`'s runs (None when a run lacks it)."""
  mine = [run for run in runs if run["start"] == start]
  return {name: (None if any(run[name] is None for run in mine)
                 else sum(run[name] for run in mine) / len(mine)) for name in FIGURES}


@cli.user_errors_as_messages
def main(argv):
  del argv
  runs, names = [], []
  for start in _STARTS.value:
    name, _, suffix = start.partition(":")
    names.append(name)
    finished, note = run_results.finished_seeds(_RUNS_DIR.value, name, suffix,
                                                list(map(int, _SEEDS.value)))
    if note:
      print(note, file=sys.stderr)
    runs += [run_entry(name, seed, run_results.eval_folder(_RUNS_DIR.value, suffix, seed))
             for seed in finished]
  os.makedirs(os.path.dirname(os.path.abspath(_OUTPUT.value)), exist_ok=True)
  files.write_json(_OUTPUT.value, {"runs": runs})
  for name in names:
    seeds = ", ".join(str(run["seed"]) for run in runs if run["start"] == name)
    print(f"{name}, seeds {seeds}: " + ", ".join(
        f"{figure} {value:.4g}" if value is not None else f"{figure} missing"
        for figure, value in means(runs, name).items()))


if __name__ == "__main__":
  app.run(main)
