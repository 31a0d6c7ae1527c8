"""Fashion-Gen HDF5 files: the schema, a streaming reader and a writer of the same schema.

The real files (`fashiongen_256_256_{train,validation}.h5`) hold (N, 256, 256, 3) uint8 images and
(N, 1) byte-string columns that are latin-1, not UTF-8; some re-exports store UTF-8 instead, and
some store the product ids as strings. The reader detects the text encoding (`detect_encoding`)
unless told, and takes integer or string product ids. All views of a product sit in consecutive
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

ENCODING = "latin-1"  # what the original files hold
TEXT_ENCODINGS = ("auto", "latin-1", "utf-8")
INVALID_UTF8 = "invalid_utf8"  # a row's text is not UTF-8 in a file read as UTF-8
_SAMPLE_ROWS = 4096  # rows whose texts `detect_encoding` looks at, spread over the file
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


def _encode(text: str, encoding: str) -> bytes:
  return text.encode(encoding, errors="replace")


def _is_multibyte_utf8(raw: bytes) -> bool | None:
  """True for UTF-8 with a multi-byte sequence, False for ASCII, None for bytes not UTF-8."""
  try:
    raw.decode("utf-8")
  except UnicodeDecodeError:
    return None
  return any(byte >= 0x80 for byte in raw)


def detect_encoding(values: Iterable[bytes]) -> str:
  """UTF-8 if every value decodes as UTF-8 and at least one holds a multi-byte sequence, else
  latin-1 (which decodes any bytes; plain ASCII reads the same either way)."""
  multibyte = False
  for raw in values:
    kind = _is_multibyte_utf8(bytes(raw))
    if kind is None:
      return ENCODING
    multibyte |= kind
  return "utf-8" if multibyte else ENCODING


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
                     image_size: int = 256, text_encoding: str = ENCODING,
                     string_product_ids: bool = False) -> int:
  """Writes `products` as a Fashion-Gen HDF5 file atomically; returns the number of image rows.

  Images are streamed into the file product by product, so `products` may be a generator and
  memory holds only the (small) text columns. `text_encoding` and `string_product_ids` write
  the variants some re-exports of the files use (UTF-8 text, product ids as byte strings).
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
      _write_strings(f, key, [_encode(v, text_encoding) for v in columns[key]])
    if string_product_ids:
      _write_strings(f, "input_productID", [str(v).encode() for v in columns["input_productID"]])
    else:
      f.create_dataset("input_productID",
                       data=np.array(columns["input_productID"], np.int64).reshape(n, 1))
    f.create_dataset("input_msrpUSD",
                     data=np.array(columns["input_msrpUSD"], np.float64).reshape(n, 1))
    f.create_dataset("index", data=np.arange(n, dtype=np.int64))
    f.create_dataset("index_2", data=np.arange(n, dtype=np.int64))
  os.replace(tmp_path, path)
  return n


def _write_strings(f: h5py.File, key: str, encoded: list[bytes]) -> None:
  width = max([len(e) for e in encoded] + [1])
  f.create_dataset(key, data=np.array(encoded, dtype=f"S{width}").reshape(len(encoded), 1))


def _product_id(value: np.generic) -> str:
  """An integer or byte-string product id as text."""
  if isinstance(value, (bytes, np.bytes_)):
    return bytes(value).decode("utf-8", errors="replace").strip()
  if isinstance(value, (float, np.floating)) and float(value).is_integer():
    return str(int(value))
  return str(value.item() if isinstance(value, np.generic) else value).strip()


class FashionGenCatalog:
  """Streams rows of a Fashion-Gen HDF5 file without loading it whole."""

  def __init__(self, path: str, text_encoding: str = "auto"):
    """`text_encoding`: one of TEXT_ENCODINGS; "auto" runs `detect_encoding` on a sample of
    the text columns (the choice is `self.text_encoding`)."""
    if text_encoding not in TEXT_ENCODINGS:
      raise catalog.CatalogError(f"--text_encoding={text_encoding!r} is not one of "
                                 f"{', '.join(TEXT_ENCODINGS)}.")
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
    self.text_encoding = (self._detect_encoding() if text_encoding == "auto" else
                          text_encoding)

  def __len__(self) -> int:
    return self._length

  def _detect_encoding(self) -> str:
    step = max(1, self._length // _SAMPLE_ROWS)
    rows = np.arange(0, self._length, step)[:_SAMPLE_ROWS]
    sample = [value for key in ("input_name", "input_description", "input_category",
                                "input_subcategory")
              for value in np.asarray(self._file[key][rows]).reshape(-1)]
    return detect_encoding(sample)

  def _raw_strings(self, key: str, start: int, stop: int) -> list[bytes]:
    return [bytes(v) for v in np.asarray(self._file[key][start:stop]).reshape(-1)]

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

  def _texts(self, start: int, stop: int) -> list[tuple[dict[str, str], str | None]]:
    """Per row, its text columns decoded and None, or ({}, INVALID_UTF8)."""
    keys = ("input_name", "input_description", "input_category", "input_subcategory",
            "input_pose")
    columns = {key: self._raw_strings(key, start, stop) for key in keys}
    texts = []
    for offset in range(stop - start):
      try:
        texts.append(({key: columns[key][offset].decode(self.text_encoding) for key in keys},
                      None))
      except UnicodeDecodeError:
        texts.append(({key: "" for key in keys}, INVALID_UTF8))
    return texts

  def read(self, start: int, stop: int, with_images: bool = True) -> list[catalog.CatalogRow]:
    stop = min(stop, self._length)
    texts = self._texts(start, stop)
    product_ids = np.asarray(self._file["input_productID"][start:stop]).reshape(-1)
    rows = []
    images = (self._read_images(start, stop) if with_images else
              [(None, None)] * (stop - start))
    for offset, (image, error) in enumerate(images):
      strings, text_error = texts[offset]
      rows.append(catalog.CatalogRow(
          index=start + offset,
          image_id=f"{self._stem}:{start + offset}",
          product_id=_product_id(product_ids[offset]),
          name=strings["input_name"],
          description=strings["input_description"],
          category=strings["input_category"],
          subcategory=strings["input_subcategory"],
          pose=strings["input_pose"],
          image=image,
          error=text_error or error))
    return rows

  def close(self) -> None:
    self._file.close()
