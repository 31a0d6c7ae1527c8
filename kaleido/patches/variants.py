"""Every version of an image's 55 patches that a pre-training step can show: the variant table.

The kaleido transforms (paper section 3.6) change few patches, in ways listed in advance, and each
patch is embedded on its own, so one table per image holds every patch a transformed image can
contain:

  rows  0..54   the 55 patches as cut (L2 permuted, L3 camouflaged, L5 blanked reuse these)
  rows 55..57   the L1 patch turned 1, 2, 3 x 90 degrees counter-clockwise (RR)
  rows 58..73   L4 patch 0..15 greyed (G2CM)

A transformed image is `tf.gather(table, rows)` with `variant_rows`. The table is built from
pixels (`pixel_variants`) or read as features from the cache (kaleido.feature_cache), where each
row is the frozen patch CNN's feature of that row's pixels; the same rows give the same image in
both, so the two input paths draw identical batches.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from kaleido.patches import kaleido_grid

NUM_PATCHES = kaleido_grid.NUM_PATCHES
ROTATED_L1_START = NUM_PATCHES  # row of the L1 patch turned once; +1, +2 for twice, three times
_L4 = kaleido_grid.level_slice(4)
GREYED_L4_START = ROTATED_L1_START + kaleido_grid.NUM_ROTATIONS - 1
NUM_VARIANTS = GREYED_L4_START + (_L4.stop - _L4.start)  # 74
_JIGSAW = np.asarray(kaleido_grid.JIGSAW_PERMUTATIONS, np.int32)  # no TensorFlow work at import
_L2 = kaleido_grid.level_slice(2)


def grey(pixels: tf.Tensor) -> tf.Tensor:
  """(..., 3) uint8 -> luminance (ITU-R 601) replicated to 3 channels, uint8."""
  luminance = tf.image.rgb_to_grayscale(tf.cast(pixels, tf.float32))
  luminance = tf.cast(tf.clip_by_value(tf.round(luminance), 0.0, 255.0), tf.uint8)
  return tf.repeat(luminance, 3, axis=-1)


def pixel_variants(patches: tf.Tensor) -> tf.Tensor:
  """(55, P, P, 3) uint8 patches -> (NUM_VARIANTS, P, P, 3) uint8 variant table."""
  rotated = [tf.image.rot90(patches[:1], turns) for turns in range(1, kaleido_grid.NUM_ROTATIONS)]
  return tf.concat([patches, *rotated, grey(patches[_L4])], axis=0)


def variant_rows(rotation: tf.Tensor, jigsaw: tf.Tensor, grey_positions: tf.Tensor,
                 greyed: bool) -> tf.Tensor:
  """(55,) int32 table rows of the image with L1 turned `rotation` x 90 degrees, L2 in the
  order of JIGSAW_PERMUTATIONS[`jigsaw`] (slot i shows L2 patch permutation[i]) and, when
  `greyed`, the patches at `grey_positions` (absolute L4 indices) greyed."""
  rotation = tf.cast(rotation, tf.int32)
  first = tf.where(rotation > 0, ROTATED_L1_START - 1 + rotation, 0)[tf.newaxis]
  second = _L2.start + tf.gather(_JIGSAW, jigsaw)
  rows = tf.concat([first, second, tf.range(_L2.stop, NUM_PATCHES)], axis=0)
  if not greyed:
    return rows
  positions = tf.cast(grey_positions, tf.int32)
  return tf.tensor_scatter_nd_update(rows, positions[:, tf.newaxis],
                                     GREYED_L4_START + positions - _L4.start)
