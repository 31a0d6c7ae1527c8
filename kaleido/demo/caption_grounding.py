"""Whether captions of demo images name what the images show.

CIDEr rewards any n-gram a reference shares, so a captioner that copies a training product's
caption scores well on the template words and badly only on the few that tell products apart.
The demo catalog's ground-truth sidecar (kaleido.demo.groundtruth) lists, per image, the words of
its text that name something drawn (colour, category, pattern, sleeve, neckline, detail): the
share of those words a caption contains, per kind, says which attributes a captioner reads from
the image and which it guesses.
"""

from __future__ import annotations

import collections
import re
from typing import Mapping, Sequence

from kaleido import errors
from kaleido.demo import groundtruth

_LETTERS = re.compile(r"[^\W\d_]+")


def truths_by_id(truths: Sequence[groundtruth.ImageTruth],
                 stem: str) -> dict[str, groundtruth.ImageTruth]:
  """{image id: truth}, with ids as the catalog reader gives them ("<file stem>:<row>")."""
  return {f"{stem}:{truth.row}": truth for truth in truths}


def word_recall(predictions: Mapping[str, str],
                truths: Mapping[str, groundtruth.ImageTruth]) -> dict[str, float]:
  """{kind: share of the images' ground-truth words of that kind found in their captions},
  over every (image, word) pair; a KaleidoError names a caption id the ground truth lacks."""
  unknown = [key for key in predictions if key not in truths]
  if unknown:
    raise errors.KaleidoError(
        f"{len(unknown)} caption ids (first {unknown[0]!r}) are not images of the ground-truth "
        "catalog; pass the demo catalog the captions were made from (its <split>.h5).")
  found, total = collections.Counter(), collections.Counter()
  for key, caption in predictions.items():
    parts = set(_parts(caption))
    for word_box in truths[key].words:
      total[word_box.kind] += 1
      found[word_box.kind] += parts.issuperset(_parts(word_box.word))
  return {kind: found[kind] / total[kind] for kind in sorted(total)}


def _parts(words: str) -> list[str]:
  """The lower-cased letter runs of `words`: a decoded caption spaces hyphens ("t - shirt"),
  so a hyphenated word is named when all of its parts are."""
  return _LETTERS.findall(words.lower())


def distinct_captions(predictions: Mapping[str, str]) -> int:
  """How many different captions there are (a copying captioner repeats a few)."""
  return len(set(predictions.values()))
