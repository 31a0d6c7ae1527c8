"""The per-chunk image work of data preparation, run in worker processes (no TensorFlow).

A worker opens the catalog and the patch generator once, then turns row ranges into
`RowResult`s: the text and the kaleido crop of every good row, or the reason a row is skipped.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from kaleido.data import catalog as catalog_lib
from kaleido.data import catalogs
from kaleido.data import splits
from kaleido.patches import generator
from kaleido.records import catalog_scan
from kaleido.utils import interrupts

# The reason a row is skipped that the worker itself detects (the first pass and the catalog
# readers have their own).
BAD_IMAGE = "bad_image_shape"


@dataclasses.dataclass(frozen=True)
class ChunkTask:
  """Rows [start, stop) of a catalog; `conflicting_rows` are those of them the first pass
  found conflicting (kaleido.records.catalog_scan)."""
  catalog_path: str
  start: int
  stop: int
  text_field: str
  patch_config: generator.PatchConfig
  split: splits.ProductSplit | None = None
  text_encoding: str = "auto"
  conflicting_rows: frozenset[int] = frozenset()


@dataclasses.dataclass(frozen=True)
class RowResult:
  """One processed row: `crop` is None exactly when `skip_reason` is set."""
  index: int
  image_id: str
  product_id: str
  text: str
  name: str  # the product name (title), also stored for title-based retrieval
  category: str
  subcategory: str
  pose: str
  crop: generator.KaleidoCrop | None
  skip_reason: str | None


_catalogs: dict[str, catalog_lib.Catalog] = {}
_generators: dict[generator.PatchConfig, generator.KaleidoPatchGenerator] = {}


def initialize_worker(in_child: bool = True) -> None:
  """Keeps OpenCV single-threaded (parallelism comes from the worker processes) and, in a
  worker process, ties its life to its parent's and leaves Ctrl-C to the parent (which stops
  handing out work and keeps every finished shard)."""
  cv2.setNumThreads(1)
  if in_child:
    interrupts.become_worker()


def _skip_reason(row: catalog_lib.CatalogRow, text: str, task: ChunkTask) -> str | None:
  reason = catalog_scan.text_skip_reason(row, text, task.split)
  if reason:
    return reason
  if row.index in task.conflicting_rows:
    return catalog_scan.CONFLICTING_LABELS
  image = row.image
  if image is None or image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 8:
    return BAD_IMAGE
  return None


def process_chunk(task: ChunkTask) -> list[RowResult]:
  """Reads and crops rows [task.start, task.stop)."""
  if task.catalog_path not in _catalogs:
    _catalogs[task.catalog_path] = catalogs.open_catalog(task.catalog_path, task.text_encoding)
  if task.patch_config not in _generators:
    _generators[task.patch_config] = generator.KaleidoPatchGenerator(task.patch_config)
  rows = _catalogs[task.catalog_path].read(task.start, task.stop)
  texts = [row.text(task.text_field) for row in rows]
  reasons = [_skip_reason(row, text, task) for row, text in zip(rows, texts)]
  good = [i for i, reason in enumerate(reasons) if reason is None]
  crops = _generators[task.patch_config].crops(
      [np.ascontiguousarray(rows[i].image, dtype=np.uint8) for i in good])
  crop_of = dict(zip(good, crops))
  return [
      RowResult(index=row.index, image_id=row.image_id, product_id=row.product_id, text=text,
                name=row.name.strip(), category=row.category, subcategory=row.subcategory, pose=row.pose,
                crop=crop_of.get(i), skip_reason=reasons[i])
      for i, (row, text) in enumerate(zip(rows, texts))
  ]
