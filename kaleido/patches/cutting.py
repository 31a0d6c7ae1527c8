"""Cutting the 55 kaleido patches and their boxes from a product crop, in TensorFlow ops.

For level n the crop is resized (antialiased) to n*P x n*P and split exactly into its n x n
cells, so every patch of a level has the same pixel footprint and no cell is interpolated across
a grid line. Runs inside tf.data (the reader) and in exported graphs alike.
"""

from __future__ import annotations

import tensorflow as tf

from kaleido.patches import kaleido_grid


def level_patches(crop: tf.Tensor, level: int, patch_size: int) -> tf.Tensor:
  """(h, w, 3) crop -> (level**2, P, P, 3) float32 patches of one kaleido level, row-major."""
  side = level * patch_size
  resized = tf.image.resize(tf.cast(crop, tf.float32), [side, side], method="bilinear",
                            antialias=True)
  cells = tf.reshape(resized, [level, patch_size, level, patch_size, 3])
  cells = tf.transpose(cells, [0, 2, 1, 3, 4])
  return tf.reshape(cells, [level * level, patch_size, patch_size, 3])


def _to_uint8(pixels: tf.Tensor) -> tf.Tensor:
  return tf.cast(tf.clip_by_value(tf.round(pixels), 0.0, 255.0), tf.uint8)


def square_crop(crop: tf.Tensor, size: int) -> tf.Tensor:
  """(h, w, 3) crop -> (size, size, 3) uint8: the whole crop, resized as the L1 patch is."""
  return _to_uint8(level_patches(crop, 1, size)[0])


def cut_patches(crop: tf.Tensor, patch_size: int) -> tf.Tensor:
  """(h, w, 3) uint8 crop -> (55, P, P, 3) uint8 kaleido patches in level order, row-major."""
  return _to_uint8(tf.concat([level_patches(crop, n, patch_size) for n in kaleido_grid.LEVELS],
                             axis=0))


def patch_boxes(crop_box: tf.Tensor) -> tf.Tensor:
  """(4,) crop box `[x1, y1, x2, y2]` -> (55, 5) boxes `[x1, x2, y1, y2, w*h]` (full image)."""
  cells = tf.constant(kaleido_grid.grid_fractions(), tf.float32)
  width = crop_box[2] - crop_box[0]
  height = crop_box[3] - crop_box[1]
  x1 = crop_box[0] + cells[:, 0] * width
  x2 = crop_box[0] + cells[:, 2] * width
  y1 = crop_box[1] + cells[:, 1] * height
  y2 = crop_box[1] + cells[:, 3] * height
  return tf.stack([x1, x2, y1, y2, (x2 - x1) * (y2 - y1)], axis=-1)
