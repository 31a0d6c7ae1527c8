r"""Prints the start, end and best value of every scalar a training run wrote to TensorBoard.

  python tools/summarize_run.py --model_dir runs/demo_pretrain
"""

import glob
import os
import sys

from absl import app
from absl import flags

_MODEL_DIR = flags.DEFINE_string("model_dir", None, "The --model_dir of a train.py run.")


def main(argv):
  del argv
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top
  events = sorted(glob.glob(os.path.join(_MODEL_DIR.value, "train", "events.out.tfevents.*")))
  if not events:
    print(f"error: {_MODEL_DIR.value!r} has no TensorBoard events under train/.", file=sys.stderr)
    sys.exit(1)
  series: dict[str, list[tuple[int, float]]] = {}
  for path in events:  # a resumed run adds a file; steps continue
    accumulator = event_accumulator.EventAccumulator(path, size_guidance={"tensors": 0})
    accumulator.Reload()
    for tag in accumulator.Tags()["tensors"]:
      for event in accumulator.Tensors(tag):
        if event.tensor_proto.dtype != tf.string.as_datatype_enum and not event.tensor_proto.tensor_shape.dim:
          series.setdefault(tag, []).append((event.step, float(tf.make_ndarray(event.tensor_proto))))
  print(f"{'scalar':32s} {'first (step)':>18s} {'last (step)':>18s} {'best':>9s}")
  for tag, points in sorted(series.items()):
    points.sort()
    best = (max if "accuracy" in tag or "per_second" in tag else min)(v for _, v in points)
    print(f"{tag:32s} {points[0][1]:10.4f} ({points[0][0]:5d}) {points[-1][1]:10.4f} "
          f"({points[-1][0]:5d}) {best:9.4f}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["model_dir"])
  app.run(main)
