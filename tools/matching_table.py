r"""The table of tools/matching_ablation.sh: one row per retrieval recipe, read from its runs.

  python tools/matching_table.py --out runs/matching_ablation

Per recipe: the fine-tune's held-out ITM accuracy at its last evaluation (validation/ scalars of
TensorBoard: pair accuracy for the pointwise recipes, the share of groups whose positive ranks
first for listwise ones), sample-100 ITR / TIR R@1 / R@5 / R@10 by the ITM margin alone, and, for
recipes with an ITC head, the full gallery's R@1 by ITC alone, by its top 20 re-ranked by the
margin, and fused (margin + 20 x cosine). Figures are read from the evaluation JSON files, never
typed in.
"""

from __future__ import annotations

import os

from absl import app
from absl import flags

from kaleido.evaluation import run_results
from kaleido.training.event_files import read_scalars

_OUT = flags.DEFINE_string("out", "runs/matching_ablation", "tools/matching_ablation.sh's OUT.")
_RECIPES = flags.DEFINE_list("recipes", [], "Recipes to list (default: every folder of --out).")

VALIDATION_ITM = "validation/itm_accuracy"
FULL = (("ITC", "full_itc"), ("top 20 by margin", "full_rerank20"),
        ("top 20 fused", "full_fused20"))


def recalls(run: str, name: str) -> dict[str, float] | None:
  """{R@1, R@5, R@10} of `run`/`name`.json, None if absent."""
  result = run_results.result(run, name)
  return {key: result[key] for key in run_results.RECALLS} if result else None


def held_out_itm(run: str) -> float | None:
  points = read_scalars(run).get(VALIDATION_ITM)
  return 100.0 * points[-1][1] if points else None


def _cell(values: dict[str, float] | None, keys=("R@1", "R@5", "R@10")) -> str:
  return " / ".join(f"{values[key]:.2f}" for key in keys) if values else "-"


def main(argv):
  del argv
  out = _OUT.value
  recipes = _RECIPES.value or sorted(
      name for name in os.listdir(out) if os.path.isdir(os.path.join(out, name)))
  header = ["recipe", "held-out ITM %", "sample-100 ITR R@1/5/10", "sample-100 TIR R@1/5/10",
            *(f"full ITR / TIR R@1, {name}" for name, _ in FULL)]
  print("| " + " | ".join(header) + " |")
  print("|" + "---|" * len(header))
  for recipe in recipes:
    run = os.path.join(out, recipe)
    itm = held_out_itm(run)
    row = [recipe, f"{itm:.1f}" if itm is not None else "-",
           _cell(recalls(run, "sample100_itr")), _cell(recalls(run, "sample100_tir"))]
    for _, name in FULL:
      itr, tir = recalls(run, f"{name}_itr"), recalls(run, f"{name}_tir")
      row.append(f"{itr['R@1']:.2f} / {tir['R@1']:.2f}" if itr and tir else "-")
    print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
  app.run(main)
