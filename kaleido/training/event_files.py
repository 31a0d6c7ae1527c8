"""Reading back the scalars a training run wrote to TensorBoard."""

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
