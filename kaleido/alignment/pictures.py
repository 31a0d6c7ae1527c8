"""Pictures of what the alignment generator aligned, for people (PNG files and TensorBoard).

One row per example: the crop with the L3 grid and the generated caption and product text above
it, then one tile per aligned word: the attention heat map over the crop, the outline of the
region kept (white), the word's patches (L3 red, L4 yellow, L5 cyan) and the grid of the finest
level it reached.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from kaleido.alignment import generator
from kaleido.alignment import pairs
from kaleido.alignment import words as words_lib
from kaleido.patches import kaleido_grid
from kaleido.patches import pictures

LEVEL_COLOURS = {3: (230, 40, 40), 4: (245, 210, 30), 5: (30, 210, 245)}
GRID_COLOUR = (200, 200, 200)
LABEL_HEIGHT = 18
TEXT_COLOUR = (0, 0, 0)
_LEVELS = kaleido_grid.patch_levels()


def _draw_grid(image: np.ndarray, level: int, colour: tuple[int, int, int]) -> None:
  size = image.shape[0]
  for i in range(1, level):
    offset = round(i * size / level)
    cv2.line(image, (offset, 0), (offset, size - 1), colour, 1)
    cv2.line(image, (0, offset), (size - 1, offset), colour, 1)


def _draw_patch(image: np.ndarray, patch: int) -> None:
  x1, y1, x2, y2 = np.rint(kaleido_grid.grid_fractions()[patch] * image.shape[0]).astype(int)
  cv2.rectangle(image, (int(x1) + 1, int(y1) + 1), (int(x2) - 2, int(y2) - 2),
                LEVEL_COLOURS[int(_LEVELS[patch])], 2)


def _labelled(image: np.ndarray, label: str) -> np.ndarray:
  """The image under a white strip holding `label`."""
  strip = np.full((LABEL_HEIGHT, image.shape[1], 3), pictures.GAP_COLOUR, np.uint8)
  limit = max(1, image.shape[1] // 7)
  cv2.putText(strip, label[:limit], (2, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, TEXT_COLOUR, 1,
              cv2.LINE_AA)
  return np.concatenate([strip, image])


def _sentence(tokens: Sequence[str]) -> str:
  return " ".join(word.text for word in words_lib.group_words(tokens))


def word_tile(crop: np.ndarray, word: pairs.WordAlignment, size: int) -> np.ndarray:
  """The attention of one word over the crop, its region and its patches, labelled."""
  base = cv2.resize(crop, (size, size), interpolation=cv2.INTER_LINEAR)
  heat = cv2.resize(word.attention.astype(np.float32), (size, size),
                    interpolation=cv2.INTER_LINEAR)
  heat = np.uint8(255 * heat / max(float(heat.max()), 1e-9))
  coloured = cv2.cvtColor(cv2.applyColorMap(heat, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
  tile = cv2.addWeighted(base, 0.5, coloured, 0.5, 0.0)
  if word.patches:
    _draw_grid(tile, int(max(_LEVELS[p] for p in word.patches)), GRID_COLOUR)
  region = cv2.resize(word.region.astype(np.uint8), (size, size),
                      interpolation=cv2.INTER_NEAREST)
  contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
  cv2.drawContours(tile, contours, -1, (255, 255, 255), 1)
  for patch in word.patches:
    _draw_patch(tile, patch)
  return _labelled(tile, f"{word.word}: {len(word.patches)} patches")


def example_row(crop: np.ndarray, result: generator.ExampleResult, size: int = 160,
                max_words: int = 6) -> np.ndarray:
  """The crop and the tiles of its aligned words (those with patches first), captioned."""
  base = cv2.resize(crop, (size, size), interpolation=cv2.INTER_LINEAR)
  _draw_grid(base, 3, GRID_COLOUR)
  words = sorted(result.alignment.words, key=lambda w: not w.patches)[:max_words]
  tiles = [_labelled(base, f"{result.alignment.num_pairs} pairs")]
  tiles += [word_tile(crop, word, size) for word in words]
  gap = np.full((size + LABEL_HEIGHT, 6, 3), pictures.GAP_COLOUR, np.uint8)
  row = np.concatenate([piece for tile in tiles for piece in (tile, gap)][:-1], axis=1)
  return _labelled(_labelled(row, f"text: {_sentence(result.text_tokens)}"),
                   f"generated: {_sentence(result.caption_tokens)}")


def alignment_picture(crops: Sequence[np.ndarray], results: Sequence[generator.ExampleResult],
                      size: int = 160, max_words: int = 6) -> np.ndarray:
  """Rows of `example_row` stacked into one RGB picture."""
  return pictures.stack_rows([example_row(crop, result, size, max_words)
                              for crop, result in zip(crops, results)])
