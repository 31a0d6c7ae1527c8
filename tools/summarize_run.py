r"""Prints every scalar a training run wrote to TensorBoard: its training curve (first, last and
best value) beside its held-out one (`validation/<name>`, last and best), one row per figure.

  python tools/summarize_run.py --model_dir runs/demo_pretrain
"""

from __future__ import annotations

import os
import sys

from absl import app
from absl import flags

from kaleido.training.event_files import Series
from kaleido.training.event_files import read_scalars

_MODEL_DIR = flags.DEFINE_string("model_dir", None, "The --model_dir of a train.py run.")

VALIDATION = "validation/"


def _best(tag: str, points: list[tuple[int, float]]) -> str:
  """The best value as text: the highest accuracy or speed, the lowest loss; "-" for the
  learning rate."""
  if "learning_rate" in tag:
    return "-"
  higher_is_better = "accuracy" in tag or "per_second" in tag
  return f"{(max if higher_is_better else min)(value for _, value in points):.4f}"


def _figure_name(tag: str) -> str:
  """loss/itm, accuracy/itm_accuracy, validation/itm -> itm, itm_accuracy, itm."""
  return tag.split("/", 1)[1] if "/" in tag else tag


def table(series: Series) -> list[str]:
  """The rows: training tags with the held-out figure of the same name beside them."""
  validation = {_figure_name(tag): points for tag, points in series.items()
                if tag.startswith(VALIDATION)}
  rows = [f"{'scalar':28s} {'first (step)':>17s} {'last (step)':>17s} {'best':>9s} "
          f"{'validation last (step)':>23s} {'best':>9s}"]
  for tag, points in sorted(series.items()):
    if tag.startswith(VALIDATION):
      continue
    row = (f"{tag:28s} {points[0][1]:10.4f} ({points[0][0]:5d}) {points[-1][1]:10.4f} "
           f"({points[-1][0]:5d}) {_best(tag, points):>9s}")
    held_out = validation.get(_figure_name(tag))
    if held_out:
      row += (f" {held_out[-1][1]:16.4f} ({held_out[-1][0]:5d}) "
              f"{_best(tag, held_out):>9s}")
    rows.append(row)
  return rows


def main(argv):
  del argv
  series = read_scalars(_MODEL_DIR.value)
  if not series:
    print(f"error: {_MODEL_DIR.value!r} has no TensorBoard events under train/; pass the "
          "--model_dir of a train.py run.", file=sys.stderr)
    sys.exit(1)
  print("\n".join(table(series)))


if __name__ == "__main__":
  flags.mark_flags_as_required(["model_dir"])
  app.run(main)
