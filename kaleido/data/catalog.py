"""The catalog interface shared by every source of (image, text) products.

A catalog is a sequence of rows, one product image each. Readers stream it in slices so a
13 GB Fashion-Gen file never has to fit in memory. Opening a catalog is cheap and picklable by
path, so worker processes open their own handle.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol, Sequence

import numpy as np

from kaleido import errors
from kaleido.utils import text_validity

# Which text of a product the model reads (`text_field` in the data config).
TEXT_FIELDS = ("description", "name", "name_and_description")


class CatalogError(errors.KaleidoError):
  """A catalog that cannot be read as a whole (missing file, wrong schema)."""


@dataclasses.dataclass(frozen=True)
class CatalogRow:
  """One product image of a catalog, with its text and labels.

  `image` is an (H, W, 3) uint8 RGB array, or None when the image could not be read; then
  `error` names the reason (a short snake_case key counted in the manifest).
  """
  index: int
  image_id: str
  product_id: str
  name: str
  description: str
  category: str
  subcategory: str
  pose: str
  image: np.ndarray | None = None
  error: str | None = None

  def text(self, field: str) -> str:
    """The product text chosen by `field` (one of TEXT_FIELDS)."""
    if field == "description":
      return text_validity.clean(self.description)
    if field == "name":
      return text_validity.clean(self.name)
    if field == "name_and_description":
      parts = [text_validity.clean(p) for p in (self.name, self.description)]
      return ". ".join(part for part in parts if part)
    raise ValueError(f"Unknown text field {field!r}; use one of {TEXT_FIELDS}.")


class Catalog(Protocol):
  """A readable catalog: its length, its labels, and slices of full rows."""

  path: str

  def __len__(self) -> int:
    ...

  def labels(self) -> list[tuple[str, str]]:
    """(category, subcategory) of every row, read without touching images."""
    ...

  def read(self, start: int, stop: int, with_images: bool = True) -> Sequence[CatalogRow]:
    """Rows [start, stop), with their images decoded unless `with_images` is False."""
    ...

  def close(self) -> None:
    ...
