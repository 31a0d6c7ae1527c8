"""From a caption's attention maps to (text token, kaleido patch, score) alignment pairs.

Rule (paper section 3.3, made precise):
1. Co-occurrence. The generated caption and the product's own text are grouped into normalised
   words (`words.py`: "##" pieces merged, lower case, no accents). Every generated content word
   (no stop word, no punctuation) that also occurs in the product text is aligned; its
   attention map is the mean of the maps of its pieces, and a word generated several times is
   aligned once per generation.
2. Region. The map (G x G cells over the square crop) is upsampled bilinearly to a raster of
   the crop and the region is the smallest set of raster cells holding `mass_fraction` of the
   attention. A region larger than `max_region_area` of the crop means the captioner did not
   localise the word: it gets no pairs.
3. Overlap. Every L3, L4 and L5 patch (absolute indices 5..54) is scored by the Dice overlap of
   region and patch, 2 |region & patch| / (|region| + |patch|): 1.0 only when they coincide, low
   for a patch much larger than the region (it would show mostly other things) and for a patch
   holding little of it. A region under a third of an L5 patch (a sharp one-cell peak on an
   8 x 8 grid) reaches 0.5 with no patch and gives no pair; on the demo catalog such tiny
   regions were mostly wrong. Of the patches of a level scoring at least `min_score`, the
   `max_patches_per_level` holding the most attention are paired with the word (AGM masks at
   most 1, 2 and 3 patches at L3, L4 and L5, so more would not be used).
4. Positions. A pair is written for every position of the word in the product text: all
   occurrences, and for a word made of several pieces every piece ("app ##li ##que" -> three
   positions with the same patch and score). When several generations of a word reach the same
   patch, the best score is kept.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import cv2
import numpy as np

from kaleido.alignment import config as align_config
from kaleido.alignment import words as words_lib
from kaleido.patches import kaleido_grid

ALIGNED_LEVELS = (3, 4, 5)
FIRST_ALIGNED_PATCH = kaleido_grid.LEVEL_STARTS[ALIGNED_LEVELS[0] - 1]  # 5


@dataclasses.dataclass(frozen=True)
class WordAlignment:
  """One generated content word that also occurs in the product text."""
  word: str
  attention: np.ndarray  # (G, G) mean map of its pieces, sums to 1
  region: np.ndarray  # (R, R) bool raster of the crop
  text_positions: tuple[int, ...]  # positions in the product's token ids ([CLS] = 0)
  patches: tuple[int, ...]  # absolute patch indices scoring >= min_score, best first
  scores: tuple[float, ...]


@dataclasses.dataclass(frozen=True)
class ExampleAlignment:
  """The pairs of one example and the words they came from."""
  words: list[WordAlignment]
  align_token: np.ndarray  # (A,) int64 positions in token_ids
  align_patch: np.ndarray  # (A,) int64 absolute patch indices (5..54)
  align_score: np.ndarray  # (A,) float32

  @property
  def num_pairs(self) -> int:
    return len(self.align_token)


@functools.lru_cache(maxsize=4)
def patch_masks(raster_size: int) -> np.ndarray:
  """(55, R, R) bool: the raster cells of every kaleido patch of the crop."""
  masks = np.zeros((kaleido_grid.NUM_PATCHES, raster_size, raster_size), bool)
  bounds = np.rint(kaleido_grid.grid_fractions() * raster_size).astype(int)
  for mask, (x1, y1, x2, y2) in zip(masks, bounds):
    mask[y1:y2, x1:x2] = True
  masks.setflags(write=False)
  return masks


def attention_raster(attention: np.ndarray, raster_size: int) -> np.ndarray:
  """(G, G) attention -> (R, R) float64 map of the crop, upsampled bilinearly, summing to 1."""
  heat = cv2.resize(np.asarray(attention, np.float32), (raster_size, raster_size),
                    interpolation=cv2.INTER_LINEAR).astype(np.float64)
  heat = np.clip(heat, 0.0, None)
  total = heat.sum()
  return heat / total if total > 0 else heat


def attention_region(raster: np.ndarray, mass_fraction: float) -> np.ndarray:
  """(R, R) bool: the fewest raster cells holding `mass_fraction` of an attention raster."""
  heat = raster.ravel()
  if heat.sum() <= 0:
    return np.zeros(raster.shape, bool)
  order = np.argsort(-heat, kind="stable")
  needed = int(np.searchsorted(np.cumsum(heat[order]) / heat.sum(), mass_fraction)) + 1
  region = np.zeros(heat.size, bool)
  region[order[:needed]] = True
  return region.reshape(raster.shape)


def patch_scores(region: np.ndarray) -> np.ndarray:
  """(R, R) bool region -> (55,) Dice overlap 2 |region & patch| / (|region| + |patch|) with
  every patch; 0 for L1 and L2 patches, which are never aligned."""
  masks = patch_masks(region.shape[0])
  shared = (masks & region[None]).sum(axis=(1, 2))
  scores = 2.0 * shared / (masks.sum(axis=(1, 2)) + region.sum())
  scores[:FIRST_ALIGNED_PATCH] = 0.0
  return scores


def choose_patches(raster: np.ndarray, region: np.ndarray,
                   config: align_config.AlignConfig) -> list[tuple[int, float]]:
  """(patch, score) pairs of a word, best first: per level the `max_patches_per_level` patches
  holding the most attention among those scoring at least `min_score`; none when the region
  covers more than `max_region_area` of the crop."""
  if not region.any() or region.mean() > config.max_region_area:
    return []
  scores = patch_scores(region)
  mass = (patch_masks(raster.shape[0]) * raster[None]).sum(axis=(1, 2))
  chosen = []
  for level in ALIGNED_LEVELS:
    cells = np.arange(kaleido_grid.NUM_PATCHES)[kaleido_grid.level_slice(level)]
    candidates = cells[scores[cells] >= config.min_score]
    best = candidates[np.argsort(-mass[candidates], kind="stable")]
    chosen += [int(p) for p in best[:config.max_patches_per_level]]
  chosen.sort(key=lambda p: (-scores[p], -mass[p]))
  return [(p, float(scores[p])) for p in chosen]


def _caption_words(caption_tokens: Sequence[str], attention: np.ndarray,
                   min_length: int) -> list[tuple[str, np.ndarray]]:
  """Generated content words with the mean attention map of their pieces."""
  result = []
  for word in words_lib.group_words(caption_tokens):
    if words_lib.is_content_word(word.text, min_length):
      result.append((word.text, attention[list(word.positions)].mean(axis=0)))
  return result


def align_caption(text_tokens: Sequence[str], caption_tokens: Sequence[str],
                  attention: np.ndarray, config: align_config.AlignConfig) -> ExampleAlignment:
  """Pairs of one example (the rule in the module docstring).

  `text_tokens` are the token strings of the product's token ids ([CLS] first); `caption_tokens`
  the generated tokens without [CLS]/[SEP] and `attention` their (T, G, G) maps.
  """
  text_words = words_lib.content_positions(text_tokens, config.min_word_length)
  best: dict[tuple[int, int], float] = {}
  aligned = []
  for word, heat in _caption_words(caption_tokens, np.asarray(attention),
                                   config.min_word_length):
    if word not in text_words:
      continue
    raster = attention_raster(heat, config.raster_size)
    region = attention_region(raster, config.mass_fraction)
    found = choose_patches(raster, region, config)
    aligned.append(WordAlignment(word, heat, region, tuple(text_words[word]),
                                 tuple(p for p, _ in found), tuple(s for _, s in found)))
    for patch, score in found:
      for position in text_words[word]:
        best[(position, patch)] = max(score, best.get((position, patch), 0.0))
  keys = sorted(best)
  return ExampleAlignment(
      words=aligned,
      align_token=np.array([k[0] for k in keys], np.int64),
      align_patch=np.array([k[1] for k in keys], np.int64),
      align_score=np.array([best[k] for k in keys], np.float32))
