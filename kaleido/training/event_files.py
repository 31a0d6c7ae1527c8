"""Reading back the scalars a training run wrote to TensorBoard, and a table of them."""

from __future__ import annotations

import glob
import os

import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

Series = dict[str, list[tuple[int, float]]]


def read_scalars(model_dir: str) -> Series:
  """{tag: [(step, value)] sorted by step} of the run's TensorBoard events (a resumed run adds
  an events file; its steps continue)."""
  series: Series = {}
  for path in sorted(glob.glob(os.path.join(model_dir, "train", "events.out.tfevents.*"))):
    accumulator = event_accumulator.EventAccumulator(path, size_guidance={"tensors": 0})
    accumulator.Reload()
    for tag in accumulator.Tags()["tensors"]:
      for event in accumulator.Tensors(tag):
        proto = event.tensor_proto
        if proto.dtype != tf.string.as_datatype_enum and not proto.tensor_shape.dim:
          series.setdefault(tag, []).append((event.step, float(tf.make_ndarray(proto))))
  return {tag: sorted(points) for tag, points in series.items()}


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


def summary_table(series: Series) -> list[str]:
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
