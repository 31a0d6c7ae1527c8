"""JSON-lines catalogs: a user's own products, one image per line, UTF-8 (a byte-order mark is
allowed).

Each line: {"image": path (relative to the .jsonl file, absolute, or a URL such as
gs://bucket/x.jpg that Beam's FileSystems read; the .jsonl file may be a URL too), "text": description,
"product_id": ..., "category": ..., "subcategory": ...} and optionally "name" and "pose".
A line that cannot be a row stays in the catalog as a row with an `error` (one reason each,
counted by data preparation without losing the good rows): `invalid_utf8`, `invalid_json` (not
JSON, or not an object), `missing_field`, `invalid_<field>` (a field of the wrong type: the text,
name and pose must be strings; the image path, product id and labels non-empty strings, ids and
labels also integers; an optional field may be null), and the image's own reasons
(kaleido.data.images: missing, corrupt, truncated).
"""

from __future__ import annotations

import json
import os

from kaleido.data import catalog
from kaleido.data import images
from kaleido.utils import filesystems
from kaleido.utils import text_validity

REQUIRED_FIELDS = ("image", "text", "product_id", "category", "subcategory")
OPTIONAL_FIELDS = ("name", "pose")
_IDENTIFIERS = ("image", "product_id", "category", "subcategory")  # must not be empty
INVALID_UTF8 = "invalid_utf8"
INVALID_JSON = "invalid_json"
MISSING_FIELD = "missing_field"
_BOM = "\ufeff"


def _field_value(record: dict, field: str) -> tuple[str, str | None]:
  """(the field as text, None), or ("", the reason it is not valid)."""
  value = record.get(field)
  if value is None and field in OPTIONAL_FIELDS:
    return "", None
  integer = isinstance(value, int) and not isinstance(value, bool)
  if integer and field in ("product_id", "category", "subcategory"):
    return str(value), None
  if not isinstance(value, str) or (field in _IDENTIFIERS and text_validity.is_empty(value)):
    return "", f"invalid_{field}"
  return value, None


def _parse_line(raw: bytes) -> tuple[dict[str, str], str | None]:
  """The row's fields as text, and the reason the line cannot be a row (None if it can)."""
  try:
    line = raw.decode("utf-8")
  except UnicodeDecodeError:
    return {}, INVALID_UTF8
  try:
    record = json.loads(line.removeprefix(_BOM))
  except json.JSONDecodeError:
    return {}, INVALID_JSON
  if not isinstance(record, dict):
    return {}, INVALID_JSON
  if any(field not in record for field in REQUIRED_FIELDS):
    return {}, MISSING_FIELD
  fields = {}
  for field in REQUIRED_FIELDS + OPTIONAL_FIELDS:
    fields[field], error = _field_value(record, field)
    if error:
      return {}, error
  return fields, None


class JsonlCatalog:
  """A JSON-lines catalog; line offsets are indexed once so slices are read lazily."""

  def __init__(self, path: str):
    self.path = path
    self._root = filesystems.folder_of(path)
    self._offsets = []
    with filesystems.open_binary(path) as f:
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

  def _lines(self, start: int, stop: int) -> list[bytes]:
    lines = []
    with filesystems.open_binary(self.path) as f:
      for offset in self._offsets[start:stop]:
        f.seek(offset)
        lines.append(f.readline())
    return lines

  def _row(self, index: int, raw: bytes, with_image: bool) -> catalog.CatalogRow:
    fields, error = _parse_line(raw)
    image = None
    if error is None and with_image:
      image, error = images.read_image(filesystems.join(self._root, fields["image"]))
    return catalog.CatalogRow(
        index=index,
        image_id=f"{self._stem}:{index}",
        product_id=fields.get("product_id", ""),
        name=fields.get("name", ""),
        description=fields.get("text", ""),
        category=fields.get("category", ""),
        subcategory=fields.get("subcategory", ""),
        pose=fields.get("pose", ""),
        image=image,
        error=error)

  def read(self, start: int, stop: int, with_images: bool = True) -> list[catalog.CatalogRow]:
    stop = min(stop, len(self))
    return [self._row(start + i, line, with_images)
            for i, line in enumerate(self._lines(start, stop))]

  def close(self) -> None:
    pass
