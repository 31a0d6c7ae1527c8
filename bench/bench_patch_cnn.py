r"""Frozen patch CNN forward: the folded ResNet-50 against Keras' own inference call.

  python bench/bench_patch_cnn.py [--batch_size 16] [--patch_size 64] [--repeats 3]

Times the forward of one paper-size training batch of patches (batch x 57 patches: the 55
kaleido patches and the 2 G2CM targets) through `PatchEmbedder` (batch norm folded into the
convolutions, kaleido/model/folded_resnet.py) and through the Keras ResNet-50 with
`training=False`, best of --repeats, and prints both with their FLOP/s.
"""

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from kaleido.model import patch_embedder
from kaleido.utils import flops
# pylint: enable=g-import-not-at-top,wrong-import-position

_BATCH_SIZE = flags.DEFINE_integer("batch_size", 16, "Examples (57 patches each).")
_PATCH_SIZE = flags.DEFINE_integer("patch_size", 64, "Patch side in pixels.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed runs; the best counts.")
PATCHES_PER_EXAMPLE = 57


def _best_seconds(function, patches: tf.Tensor) -> float:
  function(patches).numpy()
  best = float("inf")
  for _ in range(_REPEATS.value):
    start = time.perf_counter()
    function(patches).numpy()
    best = min(best, time.perf_counter() - start)
  return best


def main(argv):
  del argv
  size = _PATCH_SIZE.value
  embedder = patch_embedder.PatchEmbedder("resnet50", size)
  patches = tf.constant(np.random.default_rng(0).integers(
      0, 256, (_BATCH_SIZE.value, PATCHES_PER_EXAMPLE, size, size, 3), np.uint8))

  def keras_call(batch: tf.Tensor) -> tf.Tensor:
    pixels = patch_embedder.preprocess(
        "resnet50", tf.reshape(tf.cast(batch, tf.float32), [-1, size, size, 3]))
    return embedder.cnn(pixels, training=False)

  forward_flops = flops.function_flops(keras_call, patches)
  print(f"{_BATCH_SIZE.value} x {PATCHES_PER_EXAMPLE} patches of {size} px, "
        f"{forward_flops / 1e9:.1f} GFLOP, {os.cpu_count()} cpus")
  for name, function in (("keras training=False", tf.function(keras_call)),
                         ("folded (PatchEmbedder)", tf.function(embedder))):
    seconds = _best_seconds(function, patches)
    print(f"{name:24s} {seconds:6.3f} s  {forward_flops / seconds / 1e9:6.1f} GFLOP/s")


if __name__ == "__main__":
  app.run(main)
