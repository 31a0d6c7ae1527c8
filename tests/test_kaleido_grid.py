"""Geometry of the 55 kaleido patches: order, boxes and pixel content."""

import numpy as np
import pytest
import tensorflow as tf

from kaleido.patches import cutting
from kaleido.patches import kaleido_grid


def test_levels_and_order():
  assert kaleido_grid.NUM_PATCHES == 55
  assert kaleido_grid.LEVEL_STARTS == (0, 1, 5, 14, 30)
  assert kaleido_grid.level_slice(3) == slice(5, 14)
  levels = kaleido_grid.patch_levels()
  assert [int(np.sum(levels == n)) for n in range(1, 6)] == [1, 4, 9, 16, 25]
  cells = kaleido_grid.grid_fractions()
  # Row-major inside a level: L2 is top-left, top-right, bottom-left, bottom-right.
  np.testing.assert_allclose(cells[1:5], [[0, 0, .5, .5], [.5, 0, 1, .5], [0, .5, .5, 1],
                                          [.5, .5, 1, 1]])
  for n in kaleido_grid.LEVELS:
    level = cells[kaleido_grid.level_slice(n)]
    areas = (level[:, 2] - level[:, 0]) * (level[:, 3] - level[:, 1])
    assert areas.sum() == pytest.approx(1.0)


def test_patch_boxes_are_5d_in_paper_order():
  boxes = cutting.patch_boxes(tf.constant([0.1, 0.2, 0.6, 0.7])).numpy()
  assert boxes.shape == (55, 5)
  np.testing.assert_allclose(boxes[0], [0.1, 0.6, 0.2, 0.7, 0.25], atol=1e-6)
  # L2 bottom-left cell: x in [0.1, 0.35], y in [0.45, 0.7].
  np.testing.assert_allclose(boxes[3], [0.1, 0.35, 0.45, 0.7, 0.0625], atol=1e-6)
  # Last L5 cell: the bottom-right fifth.
  np.testing.assert_allclose(boxes[54], [0.5, 0.6, 0.6, 0.7, 0.01], atol=1e-6)
  for n in kaleido_grid.LEVELS:
    assert boxes[kaleido_grid.level_slice(n), 4].sum() == pytest.approx(0.25, abs=1e-6)


def test_square_crop_box_grows_and_stays_inside():
  assert kaleido_grid.square_crop_box((100, 50, 140, 150), 256, 256, 0.0) == (70, 50, 170, 150)
  # Near the left border the square shifts right instead of leaving the image.
  assert kaleido_grid.square_crop_box((0, 0, 20, 200), 256, 256, 0.1) == (0, 0, 240, 240)
  # A square taller than a wide-but-short image is clipped to the image height.
  x1, y1, x2, y2 = kaleido_grid.square_crop_box((10, 0, 300, 100), 320, 100, 0.0)
  assert (y1, y2) == (0, 100) and x2 - x1 == 290


def _coloured_cells(n: int, patch_size: int) -> tuple[np.ndarray, np.ndarray]:
  """A crop of n x n constant cells, each a distinct colour; returns (crop, colours)."""
  colours = np.arange(n * n * 3, dtype=np.int64).reshape(n, n, 3) * 7 % 251
  crop = np.repeat(np.repeat(colours, patch_size, axis=0), patch_size, axis=1)
  return crop.astype(np.uint8), colours.reshape(n * n, 3)


def test_cut_patches_level5_is_exact_and_row_major():
  crop, colours = _coloured_cells(5, 16)
  patches = cutting.cut_patches(tf.constant(crop), 16).numpy()
  assert patches.shape == (55, 16, 16, 3) and patches.dtype == np.uint8
  level5 = patches[kaleido_grid.level_slice(5)]
  np.testing.assert_array_equal(level5, np.broadcast_to(colours[:, None, None, :], level5.shape))


def test_cut_patches_coarse_levels_hold_their_cell():
  crop, colours = _coloured_cells(2, 40)  # 80 x 80 crop with 4 quadrant colours
  patches = cutting.cut_patches(tf.constant(crop), 16).numpy()
  level2 = patches[kaleido_grid.level_slice(2)]
  # Away from the borders the resized quadrants keep their exact colour.
  np.testing.assert_array_equal(level2[:, 4:12, 4:12, :],
                                np.broadcast_to(colours[:, None, None, :], (4, 8, 8, 3)))
  # The single L1 patch shows the four quadrants in place.
  np.testing.assert_array_equal(patches[0, 2, 2], colours[0])
  np.testing.assert_array_equal(patches[0, 2, 13], colours[1])
  np.testing.assert_array_equal(patches[0, 13, 2], colours[2])
  np.testing.assert_array_equal(patches[0, 13, 13], colours[3])
