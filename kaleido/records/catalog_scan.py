"""The first pass of data preparation: every row's texts and labels, no images.

It decides, before any image is cut, what only the whole catalog can tell: the label maps (from
the rows that will be written: rows refused for their texts, ids or labels add no class) and the
rows whose product already appeared with other labels (`conflicting_labels`: the first row of a
product fixes its labels, later rows that disagree are skipped and counted). Rows refused for
their image are only found when the image is read; their labels still count, so a class whose
every image is unreadable keeps an id with no examples.
"""

from __future__ import annotations

import dataclasses

from kaleido.data import catalog as catalog_lib
from kaleido.data import splits

EMPTY_TEXT = "empty_text"
CONFLICTING_LABELS = "conflicting_labels"
OTHER_SPLIT = "other_split"  # a product of the other side of --holdout_fraction: not an error
_READ_ROWS = 8192


def text_skip_reason(row: catalog_lib.CatalogRow, text: str,
                     split: splits.ProductSplit | None) -> str | None:
  """Why a row cannot be written, judged on its texts, ids and labels alone (None: it can)."""
  if split is not None and not split.keeps(row.product_id):
    return OTHER_SPLIT
  if row.error:
    return row.error
  if not row.product_id:
    return "invalid_product_id"
  if not text:
    return EMPTY_TEXT
  return None


@dataclasses.dataclass(frozen=True)
class CatalogScan:
  """What the first pass found: the labels of the rows to write, and the conflicting rows."""
  labels: frozenset[tuple[str, str]]
  conflicting_rows: frozenset[int]

  def label_maps(self) -> tuple[dict[str, int], dict[str, int]]:
    """Category and subcategory ids, sorted by name."""
    categories = sorted({category for category, _ in self.labels})
    subcategories = sorted({subcategory for _, subcategory in self.labels})
    return ({name: i for i, name in enumerate(categories)},
            {name: i for i, name in enumerate(subcategories)})


def scan_catalog(catalog: catalog_lib.Catalog, text_field: str) -> CatalogScan:
  """Reads every row of `catalog` without images. Rows of both sides of a split by product
  count, so that both folders of a --holdout_fraction run get the same label ids."""
  first_labels: dict[str, tuple[str, str]] = {}
  conflicting: set[int] = set()
  for start in range(0, len(catalog), _READ_ROWS):
    for row in catalog.read(start, start + _READ_ROWS, with_images=False):
      if text_skip_reason(row, row.text(text_field), None):
        continue
      labels = (row.category, row.subcategory)
      first = first_labels.setdefault(row.product_id, labels)
      if first != labels:
        conflicting.add(row.index)
  return CatalogScan(labels=frozenset(first_labels.values()),
                     conflicting_rows=frozenset(conflicting))
