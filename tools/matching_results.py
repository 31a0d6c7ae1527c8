r"""bench/results/demo_matching.json from the demo pipeline's own evaluation files (issue #33).

  python tools/matching_results.py --recipe=chosen: --recipe=paper:_paper --seeds=0,1,2 \
      --output=bench/results/demo_matching.json

For each recipe (NAME:SUFFIX, the suffix tools/run_demo.sh gives its folders: "" for the demo
flag files, _paper for RECIPE=paper) and seed it reads runs/demo_eval<SUFFIX>[_seed<N>]/: the
sample-100 and full-gallery retrieval JSON files of evaluate.py, caption.json, category.json,
pretraining_itm.json (tools/pretraining_itm.py) and commands.txt, and writes one run per (seed,
recipe) with the figures as the files hold them (Rank@K in percent), then prints the means.
"""

from __future__ import annotations

import os

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

@cli.user_errors_as_messages
def main(argv):
  del argv
  runs = []
  for recipe in _RECIPES.value:
    name, _, suffix = recipe.partition(":")
    for seed in map(int, _SEEDS.value):
      figures = run_results.run_figures(run_results.eval_folder(_RUNS_DIR.value, suffix, seed))
      del figures["subcategory_accuracy"]  # not in issue #33's shape
      runs.append({"seed": seed, "recipe": name, **figures})
  os.makedirs(os.path.dirname(os.path.abspath(_OUTPUT.value)), exist_ok=True)
  files.write_json(_OUTPUT.value, {"runs": runs})
  for recipe in _RECIPES.value:
    name = recipe.partition(":")[0]
    mine = [run for run in runs if run["recipe"] == name]
    mean = lambda pick: sum(pick(run) for run in mine) / len(mine)
    print(f"{name}, seeds {', '.join(str(run['seed']) for run in mine)}: pre-training ITM "
          f"{100 * mean(lambda run: run['pretrain_development_itm_accuracy']):.1f}%, sample-100 "
          f"ITR / TIR R@1 {mean(lambda run: run['sample100']['itr']['R@1']):.2f} / "
          f"{mean(lambda run: run['sample100']['tir']['R@1']):.2f}")


if __name__ == "__main__":
  app.run(main)
