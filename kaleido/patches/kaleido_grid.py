"""Geometry of the 55 kaleido patches: 1x1 .. 5x5 grids of the product crop (paper section 3.2).

Patches are numbered in level order L1..L5 and row-major inside a level: index 0 is L1, 1..4 are
L2, 5..13 are L3, 14..29 are L4 and 30..54 are L5. Each patch has a 5-D box
`[x1, x2, y1, y2, w*h]` normalised to the full image (paper section 3.5 order), computed from the
crop box and `grid_fractions()` by `kaleido.patches.cutting.patch_boxes`. The label spaces of the
kaleido tasks follow from the grid: 4 rotations of L1, the 24 orders of L2, 9 slots of L3.
"""

from __future__ import annotations

import itertools

import numpy as np

LEVELS = (1, 2, 3, 4, 5)
NUM_PATCHES = sum(n * n for n in LEVELS)  # 55
LEVEL_STARTS = tuple(int(s) for s in np.cumsum([0] + [n * n for n in LEVELS[:-1]]))  # 0,1,5,14,30
BOX_DIM = 5
NUM_ROTATIONS = 4  # RR: 0/90/180/270 degrees counter-clockwise
# JPS label k: the patch shown at L2 slot i is original patch JIGSAW_PERMUTATIONS[k][i].
JIGSAW_PERMUTATIONS = tuple(itertools.permutations(range(4)))
NUM_CAMOUFLAGE_SLOTS = 3 * 3  # CP: which L3 patch was replaced


def level_slice(level: int) -> slice:
  """Patch indices of `level` (1-based) as a slice."""
  start = LEVEL_STARTS[level - 1]
  return slice(start, start + level * level)


def visible_patches(levels) -> np.ndarray:
  """(55,) 1 for the patches of `levels` (a subset of LEVELS), 0 for the others."""
  return np.isin(patch_levels(), list(levels)).astype(np.int32)


def patch_levels() -> np.ndarray:
  """(55,) level (1..5) of every patch."""
  return np.concatenate([np.full(n * n, n, dtype=np.int32) for n in LEVELS])


def grid_fractions() -> np.ndarray:
  """(55, 4) float64 cell boxes `[x1, y1, x2, y2]` in units of the crop, in patch order."""
  cells = []
  for n in LEVELS:
    for row in range(n):
      for col in range(n):
        cells.append((col / n, row / n, (col + 1) / n, (row + 1) / n))
  return np.asarray(cells, dtype=np.float64)


def square_crop_box(box: tuple[int, int, int, int], image_width: int, image_height: int,
                    margin: float) -> tuple[int, int, int, int]:
  """Grows a pixel box `[x1, y1, x2, y2)` by `margin` (fraction of its side) into a square.

  The square is shifted to stay inside the image; where the image is too narrow it is clipped,
  so the result may stay non-square on non-square images.
  """
  x1, y1, x2, y2 = box
  side = max(x2 - x1, y2 - y1) * (1.0 + 2.0 * margin)
  side_x = min(int(round(side)), image_width)
  side_y = min(int(round(side)), image_height)
  centre_x, centre_y = (x1 + x2) / 2.0, (y1 + y2) / 2.0
  left = int(round(centre_x - side_x / 2.0))
  top = int(round(centre_y - side_y / 2.0))
  left = min(max(left, 0), image_width - side_x)
  top = min(max(top, 0), image_height - side_y)
  return left, top, left + side_x, top + side_y

