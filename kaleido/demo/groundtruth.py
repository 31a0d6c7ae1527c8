"""The demo catalog's ground-truth sidecar: what real data lacks, for measuring our generators.

`catalog.h5` has `catalog.groundtruth.json` beside it:

    {"format": "kaleido-demo-groundtruth/1",
     "catalog": "catalog.h5",
     "images": [{"row": 0, "product_id": "1000",
                 "foreground_box": [x1, y1, x2, y2],
                 "foreground_mask": {"size": [H, W], "counts": [...]},
                 "words": [{"word": "pocket", "kind": "detail", "box": [x1, y1, x2, y2]}, ...]},
                ...]}

Boxes are pixel coordinates of the full image, x2/y2 exclusive. Masks are run-length encoded in
row-major order, the counts alternating background / foreground runs, starting with background.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Sequence

import numpy as np

from kaleido.utils import files

FORMAT = "kaleido-demo-groundtruth/1"
Box = tuple[int, int, int, int]


@dataclasses.dataclass
class WordBox:
  """A word of the product text and the image region it names."""
  word: str
  kind: str  # "colour", "pattern", "sleeve", "neckline", "detail", "category", ...
  box: Box


@dataclasses.dataclass
class ImageTruth:
  """Ground truth of one catalog row."""
  row: int
  product_id: str
  foreground_box: Box
  foreground_mask: np.ndarray  # (H, W) bool
  words: list[WordBox]


def sidecar_path(catalog_path: str) -> str:
  """`dir/name.h5` -> `dir/name.groundtruth.json`."""
  return os.path.splitext(catalog_path)[0] + ".groundtruth.json"


def encode_mask(mask: np.ndarray) -> dict:
  """Run-length encodes a boolean (H, W) mask."""
  flat = np.asarray(mask, dtype=bool).reshape(-1)
  changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
  bounds = np.concatenate([[0], changes, [flat.size]])
  counts = np.diff(bounds).tolist()
  if flat.size and flat[0]:
    counts = [0] + counts
  return {"size": list(mask.shape), "counts": counts}


def decode_mask(rle: dict) -> np.ndarray:
  """Inverse of `encode_mask`."""
  height, width = rle["size"]
  counts = np.asarray(rle["counts"], dtype=np.int64)
  values = np.arange(len(counts)) % 2 == 1
  flat = np.repeat(values, counts)
  if flat.size != height * width:
    raise ValueError(f"Mask run lengths sum to {flat.size}, expected {height * width}.")
  return flat.reshape(height, width)


def mask_box(mask: np.ndarray) -> Box:
  """Tight [x1, y1, x2, y2) box of a boolean mask; the whole image when it is empty."""
  ys, xs = np.nonzero(mask)
  if ys.size == 0:
    return (0, 0, mask.shape[1], mask.shape[0])
  return (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)


def save(catalog_path: str, truths: Sequence[ImageTruth]) -> str:
  """Writes the sidecar of `catalog_path` atomically and returns its path."""
  path = sidecar_path(catalog_path)
  payload = {
      "format": FORMAT,
      "catalog": os.path.basename(catalog_path),
      "images": [{
          "row": t.row,
          "product_id": t.product_id,
          "foreground_box": list(t.foreground_box),
          "foreground_mask": encode_mask(t.foreground_mask),
          "words": [{"word": w.word, "kind": w.kind, "box": list(w.box)} for w in t.words],
      } for t in truths],
  }
  with files.atomic_path(path) as tmp_path:
    with open(tmp_path, "w", encoding="utf-8") as f:
      json.dump(payload, f)
  return path


def load(catalog_path: str) -> list[ImageTruth]:
  """Reads the sidecar of `catalog_path` (or a sidecar path itself)."""
  path = catalog_path if catalog_path.endswith(".groundtruth.json") else sidecar_path(catalog_path)
  if not os.path.exists(path):
    raise FileNotFoundError(
        f"No ground-truth sidecar {path!r}; only catalogs written by data/make_demo.py have one.")
  with open(path, encoding="utf-8") as f:
    payload = json.load(f)
  if payload.get("format") != FORMAT:
    raise ValueError(f"{path!r} is not a {FORMAT} file (format {payload.get('format')!r}).")
  return [
      ImageTruth(
          row=item["row"],
          product_id=item["product_id"],
          foreground_box=tuple(item["foreground_box"]),
          foreground_mask=decode_mask(item["foreground_mask"]),
          words=[WordBox(w["word"], w["kind"], tuple(w["box"])) for w in item["words"]])
      for item in payload["images"]
  ]
