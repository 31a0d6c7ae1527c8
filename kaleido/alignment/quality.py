"""Alignment quality against the demo catalog's ground truth (word boxes in the sidecar).

A produced link is a distinct (word, patch) of one example, whatever the number of token
positions it was written for. Its patch box is mapped to the full image through the example's
crop box and compared with the true boxes of the word in that image (a word such as "sleeve"
may have two). Criteria:
- `overlap` (the headline): the patch and a true box share at least half of the smaller of the
  two. A patch must hold at least half of a small detail, or lie at least half inside a large
  region.
- `centre`: the patch centre lies inside a true box.
Links of a word the sidecar boxes in other images but not in this one (a front-only logo named
in the text of a back view) are wrong. Links of words the sidecar never boxes ("cotton") cannot
be judged and are only counted. Recall: of the (example, word) items with a true box whose word
is in the text, the share with at least one `overlap`-correct link. The random baseline gives
every word the same number of links, drawn uniformly without replacement from the L3..L5
patches, averaged over `draws` draws. The ceiling of a set of links (`best_correct`) counts a
link right when any patch of its level matches: what a perfect choice of patch would score with
the same words and levels (a small detail that straddles patch borders has no matching patch at
some levels; a word with no box in its image has none at all).
"""

from __future__ import annotations

import collections
import dataclasses
import re
from typing import Sequence

import numpy as np

from kaleido.alignment import pairs
from kaleido.alignment import words as words_lib
from kaleido.demo import groundtruth
from kaleido.patches import kaleido_grid

CRITERIA = ("overlap", "centre")
ALL_KINDS = "all"
UNJUDGED = "unjudged"
Box = tuple[float, float, float, float]  # x1, y1, x2, y2 normalised to the full image
CANDIDATE_PATCHES = np.arange(pairs.FIRST_ALIGNED_PATCH, kaleido_grid.NUM_PATCHES)
PATCH_LEVELS = kaleido_grid.patch_levels()


def truth_words(truth: groundtruth.ImageTruth, image_size: tuple[int, int]
                ) -> dict[str, list[tuple[str, Box]]]:
  """Normalised word -> (kind, box) of every true box of an image; "polka-dot" gives "polka"
  and "dot" the same box, as the tokenizer splits it."""
  height, width = image_size
  result: dict[str, list[tuple[str, Box]]] = collections.defaultdict(list)
  for entry in truth.words:
    x1, y1, x2, y2 = entry.box
    box = (x1 / width, y1 / height, x2 / width, y2 / height)
    for part in re.findall(r"[^\W_]+", words_lib.normalise(entry.word)):
      result[part].append((entry.kind, box))
  return result


def patch_boxes(crop_box: Sequence[float]) -> np.ndarray:
  """(55, 4) boxes [x1, y1, x2, y2] of the kaleido patches in the full image, from the crop box
  [x1, y1, x2, y2] (normalised to the full image)."""
  x1, y1, x2, y2 = (float(v) for v in crop_box)
  cells = kaleido_grid.grid_fractions()
  scale = np.array([x2 - x1, y2 - y1, x2 - x1, y2 - y1])
  return np.array([x1, y1, x1, y1]) + cells * scale


def _area(boxes: np.ndarray) -> np.ndarray:
  return np.clip(boxes[..., 2] - boxes[..., 0], 0, None) * np.clip(
      boxes[..., 3] - boxes[..., 1], 0, None)


def matches(patches: np.ndarray, truth: Box, criterion: str) -> np.ndarray:
  """(P,) bool: which of (P, 4) patch boxes match a true box under `criterion` (module
  docstring)."""
  truth = np.asarray(truth, np.float64)
  if criterion == "centre":
    cx, cy = (patches[:, 0] + patches[:, 2]) / 2, (patches[:, 1] + patches[:, 3]) / 2
    return (truth[0] <= cx) & (cx < truth[2]) & (truth[1] <= cy) & (cy < truth[3])
  shared = _area(np.concatenate([np.maximum(patches[:, :2], truth[:2]),
                                 np.minimum(patches[:, 2:], truth[2:])], axis=1))
  smaller = np.minimum(_area(patches), _area(truth))
  return (smaller > 0) & (shared >= 0.5 * smaller)


@dataclasses.dataclass
class Tally:
  """Counts per word kind (and ALL_KINDS); random counts are sums of per-draw means."""
  links: collections.Counter = dataclasses.field(default_factory=collections.Counter)
  correct: collections.Counter = dataclasses.field(default_factory=collections.Counter)
  random_correct: collections.Counter = dataclasses.field(default_factory=collections.Counter)
  best_correct: collections.Counter = dataclasses.field(default_factory=collections.Counter)
  items: collections.Counter = dataclasses.field(default_factory=collections.Counter)
  hits: collections.Counter = dataclasses.field(default_factory=collections.Counter)
  random_hits: collections.Counter = dataclasses.field(default_factory=collections.Counter)
  absent_links: int = 0  # links of words boxed elsewhere but not in their image (wrong)
  unjudged_links: int = 0
  examples: int = 0
  examples_with_links: int = 0

  def precision(self, kind: str, criterion: str = "overlap", random: bool = False) -> float:
    counts = self.random_correct if random else self.correct
    return counts[(kind, criterion)] / self.links[kind] if self.links[kind] else float("nan")

  def best_precision(self, kind: str) -> float:
    """The `overlap` precision of a perfect patch choice for the same links (module docstring)."""
    return self.best_correct[kind] / self.links[kind] if self.links[kind] else float("nan")

  def recall(self, kind: str, random: bool = False) -> float:
    counts = self.random_hits if random else self.hits
    return counts[kind] / self.items[kind] if self.items[kind] else float("nan")


class Evaluator:
  """Accumulates a Tally over examples."""

  def __init__(self, catalog_kinds: dict[str, str], draws: int = 20, seed: int = 0):
    self.tally = Tally()
    self._catalog_kinds = catalog_kinds
    self._draws = draws
    self._rng = np.random.default_rng(seed)

  @staticmethod
  def catalog_kinds(truths: Sequence[groundtruth.ImageTruth]) -> dict[str, str]:
    """Most common kind of every normalised word the sidecar boxes anywhere."""
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for truth in truths:
      for word, entries in truth_words(truth, (1, 1)).items():
        counts[word].update(kind for kind, _ in entries)
    return {word: counter.most_common(1)[0][0] for word, counter in counts.items()}

  def add(self, truth: dict[str, list[tuple[str, Box]]], text_tokens: Sequence[str],
          crop_box: Sequence[float], align_token: Sequence[int],
          align_patch: Sequence[int]) -> None:
    """One example: its true boxes (`truth_words`), token strings, crop box and pairs."""
    word_at = {p: w.text for w in words_lib.group_words(text_tokens) for p in w.positions}
    links: dict[str, set[int]] = collections.defaultdict(set)
    for token, patch in zip(align_token, align_patch):
      if int(token) in word_at:
        links[word_at[int(token)]].add(int(patch))
    self.tally.examples += 1
    self.tally.examples_with_links += bool(links)
    text_words = set(word_at.values())
    for word, boxes in truth.items():
      if word in text_words:
        for key in (boxes[0][0], ALL_KINDS):
          self.tally.items[key] += 1
    boxes_of_patches = patch_boxes(crop_box)
    for word, patches in sorted(links.items()):
      self._add_word(word, truth.get(word, []), np.array(sorted(patches)), boxes_of_patches)

  def _add_word(self, word: str, boxes: list[tuple[str, Box]], patches: np.ndarray,
                boxes_of_patches: np.ndarray) -> None:
    tally = self.tally
    if word not in self._catalog_kinds:
      tally.unjudged_links += len(patches)
      return
    keys = (boxes[0][0] if boxes else self._catalog_kinds[word], ALL_KINDS)
    tally.absent_links += 0 if boxes else len(patches)
    draws = np.stack([self._rng.choice(CANDIDATE_PATCHES, len(patches), replace=False)
                      for _ in range(self._draws)])
    for criterion in CRITERIA:
      ok = np.zeros(kaleido_grid.NUM_PATCHES, bool)
      for _, box in boxes:
        ok |= matches(boxes_of_patches, box, criterion)
      for key in keys:
        tally.correct[(key, criterion)] += int(ok[patches].sum())
        tally.random_correct[(key, criterion)] += float(ok[draws].sum(axis=1).mean())
        if criterion == "overlap":
          level_has_match = {level: ok[PATCH_LEVELS == level].any()
                             for level in kaleido_grid.LEVELS}
          tally.best_correct[key] += sum(int(level_has_match[level])
                                         for level in PATCH_LEVELS[patches])
          if boxes:
            tally.hits[key] += float(ok[patches].any())
            tally.random_hits[key] += float(ok[draws].any(axis=1).mean())
    for key in keys:
      tally.links[key] += len(patches)
