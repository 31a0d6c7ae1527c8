"""Pictures of kaleido patches, for people: one panel per level with the grid made visible."""

from __future__ import annotations

import cv2
import numpy as np

from kaleido import errors
from kaleido.patches import kaleido_grid
from kaleido.utils import files

GAP_COLOUR = (255, 255, 255)


def level_panel(patches: np.ndarray, level: int, panel_size: int, gap: int = 2) -> np.ndarray:
  """The n x n patches of `level` re-assembled into a square panel with gaps between cells."""
  cells = patches[kaleido_grid.level_slice(level)]
  cell_size = (panel_size - gap * (level - 1)) // level
  panel = np.full((panel_size, panel_size, 3), GAP_COLOUR, np.uint8)
  for index, cell in enumerate(cells):
    row, col = divmod(index, level)
    top, left = row * (cell_size + gap), col * (cell_size + gap)
    panel[top:top + cell_size, left:left + cell_size] = cv2.resize(
        cell, (cell_size, cell_size), interpolation=cv2.INTER_NEAREST)
  return panel


def kaleido_strip(patches: np.ndarray, panel_size: int = 160, caption: str = "") -> np.ndarray:
  """(55, P, P, 3) uint8 patches -> one image: the L1..L5 panels side by side, captioned."""
  gap = 8
  panels = [level_panel(patches, n, panel_size) for n in kaleido_grid.LEVELS]
  width = len(panels) * panel_size + (len(panels) - 1) * gap
  caption_height = 22 if caption else 0
  strip = np.full((panel_size + caption_height, width, 3), GAP_COLOUR, np.uint8)
  for i, panel in enumerate(panels):
    left = i * (panel_size + gap)
    strip[caption_height:, left:left + panel_size] = panel
  if caption:
    cv2.putText(strip, caption[:110], (2, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                cv2.LINE_AA)
  return strip


def stack_rows(rows: list[np.ndarray], gap: int = 10) -> np.ndarray:
  """Stacks images of equal width vertically with white gaps."""
  width = max(row.shape[1] for row in rows)
  pieces = []
  for row in rows:
    padded = np.full((row.shape[0], width, 3), GAP_COLOUR, np.uint8)
    padded[:, :row.shape[1]] = row
    pieces += [padded, np.full((gap, width, 3), GAP_COLOUR, np.uint8)]
  return np.concatenate(pieces[:-1])


def write_png(path: str, image: np.ndarray) -> None:
  """Writes an RGB uint8 image as PNG, atomically; a clear error if the folder is not writable."""
  ok, encoded = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
  if not ok:
    raise errors.KaleidoError(f"Could not encode a {image.shape} picture as PNG for {path!r}.")
  try:
    with files.atomic_path(path) as tmp_path:
      with open(tmp_path, "wb") as f:
        f.write(encoded.tobytes())
  except OSError as error:
    raise errors.KaleidoError(f"Cannot write the picture {path!r} ({error.strerror}); choose a "
                              "writable --output.") from error
