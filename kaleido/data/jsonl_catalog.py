"""JSON-lines catalogs: a user's own products, one image per line.

Each line: {"image": path (relative to the .jsonl file, or absolute), "text": description,
"product_id": ..., "category": ..., "subcategory": ...} and optionally "name" and "pose".
A line that is not valid JSON or lacks a required field stays in the catalog as a row with an
`error`, so data preparation skips and counts it without losing the good rows.
"""

from __future__ import annotations

import json
import os

import cv2
import numpy as np

from kaleido.data import catalog

REQUIRED_FIELDS = ("image", "text", "product_id", "category", "subcategory")


def _parse_line(line: str) -> tuple[dict, str | None]:
  try:
    record = json.loads(line)
  except json.JSONDecodeError:
    return {}, "invalid_json"
  if not isinstance(record, dict):
    return {}, "invalid_json"
  if any(field not in record for field in REQUIRED_FIELDS):
    return record, "missing_field"
  return record, None


def _load_image(path: str) -> tuple[np.ndarray | None, str | None]:
  if not os.path.exists(path):
    return None, "missing_image_file"
  image = cv2.imread(path, cv2.IMREAD_COLOR)
  if image is None:
    return None, "corrupt_image"
  return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), None


class JsonlCatalog:
  """A JSON-lines catalog; line offsets are indexed once so slices are read lazily."""

  def __init__(self, path: str):
    self.path = path
    self._root = os.path.dirname(os.path.abspath(path))
    self._offsets = []
    with open(path, "rb") as f:
      offset = 0
      for raw in f:
        if raw.strip():
          self._offsets.append(offset)
        offset += len(raw)
    if not self._offsets:
      raise catalog.CatalogError(
          f"Catalog {path!r} has no lines; write one JSON object per product image with the "
          f"fields {', '.join(REQUIRED_FIELDS)}.")
    self._stem = os.path.splitext(os.path.basename(path))[0]

  def __len__(self) -> int:
    return len(self._offsets)

  def _lines(self, start: int, stop: int) -> list[str]:
    lines = []
    with open(self.path, "rb") as f:
      for offset in self._offsets[start:stop]:
        f.seek(offset)
        lines.append(f.readline().decode("utf-8", errors="replace"))
    return lines

  def labels(self) -> list[tuple[str, str]]:
    labels = []
    for line in self._lines(0, len(self)):
      record, _ = _parse_line(line)
      labels.append((str(record.get("category", "")), str(record.get("subcategory", ""))))
    return labels

  def _row(self, index: int, line: str, with_image: bool) -> catalog.CatalogRow:
    record, error = _parse_line(line)
    image = None
    if error is None and with_image:
      image_path = os.path.join(self._root, str(record["image"]))
      image, error = _load_image(image_path)
    return catalog.CatalogRow(
        index=index,
        image_id=f"{self._stem}:{index}",
        product_id=str(record.get("product_id", "")),
        name=str(record.get("name", "")),
        description=str(record.get("text", "")),
        category=str(record.get("category", "")),
        subcategory=str(record.get("subcategory", "")),
        pose=str(record.get("pose", "")),
        image=image,
        error=error)

  def read(self, start: int, stop: int, with_images: bool = True) -> list[catalog.CatalogRow]:
    stop = min(stop, len(self))
    return [self._row(start + i, line, with_images)
            for i, line in enumerate(self._lines(start, stop))]

  def close(self) -> None:
    pass
