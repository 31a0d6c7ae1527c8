"""Fashion-Gen HDF5 files: the schema, a streaming reader and a writer of the same schema.

The real files (`fashiongen_256_256_{train,validation}.h5`) hold (N, 256, 256, 3) uint8 images and
(N, 1) byte-string columns that are latin-1, not UTF-8. All views of a product sit in consecutive
rows. The writer exists so the project can produce files in exactly this schema (demo catalog,
tests) and exercise the same reader the real data goes through.
"""

from __future__ import annotations

import collections
import dataclasses
import os
from typing import Iterable, Sequence

import h5py
import numpy as np

from kaleido.data import catalog

ENCODING = "latin-1"
IMAGE_KEY = "input_image"
STRING_KEYS = (
    "input_brand", "input_category", "input_composition", "input_concat_description",
    "input_department", "input_description", "input_gender", "input_name", "input_pose",
    "input_season", "input_subcategory")
ALL_KEYS = ("index", "index_2", IMAGE_KEY, "input_msrpUSD", "input_productID") + STRING_KEYS
REQUIRED_KEYS = (IMAGE_KEY, "input_description", "input_name", "input_category",
                 "input_subcategory", "input_productID", "input_pose")


@dataclasses.dataclass(frozen=True)
class ProductText:
  """The text fields of one Fashion-Gen product."""
  name: str
  description: str
  brand: str
  gender: str
  season: str
  composition: str
  department: str
  msrp_usd: float


@dataclasses.dataclass
class FashionGenProduct:
  """One product to write: its texts, labels and one image per view."""
  product_id: int
  text: ProductText
  category: str
  subcategory: str
  images: Sequence[np.ndarray]  # each (S, S, 3) uint8 RGB
  poses: Sequence[str]  # one per image, e.g. "id_gridfs_1"


def _encode(text: str) -> bytes:
  return text.encode(ENCODING, errors="replace")


def _decode(raw: bytes | np.bytes_) -> str:
  return bytes(raw).decode(ENCODING)


def _string_columns(product: FashionGenProduct, pose: str) -> dict[str, str]:
  text = product.text
  return {
      "input_brand": text.brand,
      "input_category": product.category,
      "input_composition": text.composition,
      "input_concat_description": f"{text.name} {text.description}",
      "input_department": text.department,
      "input_description": text.description,
      "input_gender": text.gender,
      "input_name": text.name,
      "input_pose": pose,
      "input_season": text.season,
      "input_subcategory": product.subcategory,
  }


def write_fashiongen(path: str, products: Iterable[FashionGenProduct],
                     image_size: int = 256) -> int:
  """Writes `products` as a Fashion-Gen HDF5 file atomically; returns the number of image rows.

  Images are streamed into the file product by product, so `products` may be a generator and
  memory holds only the (small) text columns.
  """
  tmp_path = path + ".tmp"
  columns: dict[str, list] = collections.defaultdict(list)
  with h5py.File(tmp_path, "w") as f:
    images = f.create_dataset(IMAGE_KEY, (0, image_size, image_size, 3), dtype=np.uint8,
                              maxshape=(None, image_size, image_size, 3),
                              chunks=(1, image_size, image_size, 3))
    for product in products:
      first = images.shape[0]
      images.resize(first + len(product.images), axis=0)
      images[first:] = np.stack(product.images)
      for pose in product.poses:
        for key, value in _string_columns(product, pose).items():
          columns[key].append(value)
        columns["input_productID"].append(product.product_id)
        columns["input_msrpUSD"].append(product.text.msrp_usd)
    n = images.shape[0]
    for key in STRING_KEYS:
      encoded = [_encode(v) for v in columns[key]]
      width = max([len(e) for e in encoded] + [1])
      f.create_dataset(key, data=np.array(encoded, dtype=f"S{width}").reshape(n, 1))
    f.create_dataset("input_productID",
                     data=np.array(columns["input_productID"], np.int64).reshape(n, 1))
    f.create_dataset("input_msrpUSD",
                     data=np.array(columns["input_msrpUSD"], np.float64).reshape(n, 1))
    f.create_dataset("index", data=np.arange(n, dtype=np.int64))
    f.create_dataset("index_2", data=np.arange(n, dtype=np.int64))
  os.replace(tmp_path, path)
  return n


class FashionGenCatalog:
  """Streams rows of a Fashion-Gen HDF5 file without loading it whole."""

  def __init__(self, path: str):
    self.path = path
    try:
      self._file = h5py.File(path, "r")
    except OSError as error:
      raise catalog.CatalogError(
          f"Cannot open {path!r} as HDF5 ({error}); pass a Fashion-Gen .h5 file.") from error
    missing = [key for key in REQUIRED_KEYS if key not in self._file]
    if missing:
      self._file.close()
      raise catalog.CatalogError(
          f"Fashion-Gen file {path!r} has no key {missing[0]!r} (missing: {', '.join(missing)}); "
          "it is not in the Fashion-Gen schema, which needs "
          f"{', '.join(REQUIRED_KEYS)}.")
    images = self._file[IMAGE_KEY]
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
      shape, dtype = images.shape, images.dtype
      self._file.close()
      raise catalog.CatalogError(
          f"Fashion-Gen file {path!r} has '{IMAGE_KEY}' of shape {shape} and dtype {dtype}; "
          "expected (N, H, W, 3) uint8.")
    self._length = images.shape[0]
    for key in REQUIRED_KEYS:
      if self._file[key].shape[0] != self._length:
        rows = self._file[key].shape[0]
        self._file.close()
        raise catalog.CatalogError(
            f"Fashion-Gen file {path!r} has {rows} rows in {key!r} but {self._length} images; "
            "every column must have one row per image.")
    self._stem = os.path.splitext(os.path.basename(path))[0]

  def __len__(self) -> int:
    return self._length

  def _strings(self, key: str, start: int, stop: int) -> list[str]:
    return [_decode(v) for v in np.asarray(self._file[key][start:stop]).reshape(-1)]

  def labels(self) -> list[tuple[str, str]]:
    categories, subcategories = [], []
    for start in range(0, self._length, 65536):
      stop = min(start + 65536, self._length)
      categories += self._strings("input_category", start, stop)
      subcategories += self._strings("input_subcategory", start, stop)
    return list(zip(categories, subcategories))

  def _read_images(self, start: int, stop: int) -> list[tuple[np.ndarray | None, str | None]]:
    dataset = self._file[IMAGE_KEY]
    try:
      return [(image, None) for image in dataset[start:stop]]
    except OSError:  # A damaged chunk: read row by row to keep every good image.
      results = []
      for row in range(start, stop):
        try:
          results.append((dataset[row], None))
        except OSError:
          results.append((None, "unreadable_image"))
      return results

  def read(self, start: int, stop: int, with_images: bool = True) -> list[catalog.CatalogRow]:
    stop = min(stop, self._length)
    strings = {key: self._strings(key, start, stop) for key in
               ("input_name", "input_description", "input_category", "input_subcategory",
                "input_pose")}
    product_ids = np.asarray(self._file["input_productID"][start:stop]).reshape(-1)
    rows = []
    images = (self._read_images(start, stop) if with_images else
              [(None, None)] * (stop - start))
    for offset, (image, error) in enumerate(images):
      rows.append(catalog.CatalogRow(
          index=start + offset,
          image_id=f"{self._stem}:{start + offset}",
          product_id=str(int(product_ids[offset])),
          name=strings["input_name"][offset],
          description=strings["input_description"][offset],
          category=strings["input_category"][offset],
          subcategory=strings["input_subcategory"][offset],
          pose=strings["input_pose"][offset],
          image=image,
          error=error))
    return rows

  def close(self) -> None:
    self._file.close()
