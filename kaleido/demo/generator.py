"""The demo catalog: synthetic products in the Fashion-Gen schema, with a ground-truth sidecar.

Product i of seed s is drawn from its own generator seeded with (s, i), so a catalog is
byte-for-byte reproducible and its first products do not depend on how many are made. Formats:
- "h5": a Fashion-Gen HDF5 file (`fashiongen.write_fashiongen`), views of a product in
  consecutive rows;
- "jsonl": one JSON line per image, {"image", "text", "name", "product_id", "category",
  "subcategory", "pose"}, the PNG images in a folder `<stem>_images/` beside it.
Both get `<stem>.groundtruth.json` (`groundtruth.save`): the foreground mask of every image and the
boxes of the words of its text that name something visible in it. The sidecar name ignores the
extension, so `x.h5` and `x.jsonl` in one folder would share (overwrite) one sidecar.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Iterator

import cv2
import numpy as np

from kaleido import errors
from kaleido.data import fashiongen
from kaleido.demo import garments
from kaleido.demo import groundtruth
from kaleido.demo import text
from kaleido.utils import files

FORMATS = ("h5", "jsonl")
EXTENSIONS = {"h5": (".h5", ".hdf5"), "jsonl": (".jsonl",)}
FIRST_PRODUCT_ID = 100000
MIN_IMAGE_SIZE = 64
VIEW_COUNT_PROBABILITIES = (0.1, 0.25, 0.3, 0.35)  # of 1, 2, 3, 4 views
PNG_OPTIONS = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY,
               cv2.IMWRITE_PNG_STRATEGY_RLE]  # fast, and smaller than plain level 1


@dataclasses.dataclass(frozen=True)
class DemoSummary:
  """What `make_demo_catalog` wrote."""
  path: str
  groundtruth_path: str
  format: str
  num_products: int
  num_images: int
  num_categories: int
  num_subcategories: int


@dataclasses.dataclass
class DemoProduct:
  """One generated product: its attributes, texts and drawn views."""
  product_id: int
  style: garments.Style
  text: fashiongen.ProductText
  views: list[garments.Rendering]

  @property
  def garment(self) -> garments.GarmentType:
    return garments.GARMENTS_BY_KEY[self.style.garment]

  @property
  def poses(self) -> list[str]:
    return [f"id_gridfs_{v + 1}" for v in range(len(self.views))]


def make_product(seed: int, index: int, image_size: int = 256) -> DemoProduct:
  """Product `index` of the catalog of `seed`."""
  rng = np.random.default_rng([seed, index])
  style = garments.sample_style(rng)
  texts = text.describe(style, rng)
  count = 1 + int(rng.choice(len(VIEW_COUNT_PROBABILITIES), p=VIEW_COUNT_PROBABILITIES))
  views = [garments.render(style, view, rng, image_size) for view in range(1, count + 1)]
  return DemoProduct(FIRST_PRODUCT_ID + index, style, texts, views)


def word_boxes(product: DemoProduct, rendering: garments.Rendering,
               product_box: groundtruth.Box) -> list[groundtruth.WordBox]:
  """The words of the product's name and description that name a region visible in `rendering`."""
  present = set(text.tokens(f"{product.text.name} {product.text.description}"))
  regions = {**rendering.regions, "product": [product_box]}
  words, seen = [], set()
  for word, kind, region in text.attribute_words(product.style):
    if word not in present:
      continue
    for box in regions.get(region, ()):
      if (word, box) not in seen:
        seen.add((word, box))
        words.append(groundtruth.WordBox(word, kind, box))
  return words


def _truths(product: DemoProduct, first_row: int) -> list[groundtruth.ImageTruth]:
  truths = []
  for offset, rendering in enumerate(product.views):
    box = groundtruth.mask_box(rendering.mask)
    truths.append(groundtruth.ImageTruth(
        row=first_row + offset, product_id=str(product.product_id), foreground_box=box,
        foreground_mask=rendering.mask, words=word_boxes(product, rendering, box)))
  return truths


def _fashiongen_product(product: DemoProduct) -> fashiongen.FashionGenProduct:
  return fashiongen.FashionGenProduct(
      product_id=product.product_id, text=product.text, category=product.garment.category,
      subcategory=product.garment.subcategory, images=[v.image for v in product.views],
      poses=product.poses)


def _image_folder(path: str) -> str:
  """`dir/name.jsonl` -> `name_images`, the PNG folder beside it, relative to `dir`."""
  return os.path.splitext(os.path.basename(path))[0] + "_images"


def _jsonl_lines(path: str, product: DemoProduct) -> list[str]:
  """Writes the product's PNGs into the image folder; returns its JSON lines."""
  folder = _image_folder(path)
  lines = []
  for number, (view, pose) in enumerate(zip(product.views, product.poses), start=1):
    relative = f"{folder}/{product.product_id}_{number}.png"
    image_path = os.path.join(os.path.dirname(path), relative)
    if not cv2.imwrite(image_path, cv2.cvtColor(view.image, cv2.COLOR_RGB2BGR), PNG_OPTIONS):
      raise errors.KaleidoError(f"Cannot write {image_path!r}; check that its folder is writable.")
    lines.append(json.dumps({
        "image": relative, "text": product.text.description, "name": product.text.name,
        "product_id": str(product.product_id), "category": product.garment.category,
        "subcategory": product.garment.subcategory, "pose": pose}, ensure_ascii=False))
  return lines


def _write_lines(path: str, lines: list[str]) -> None:
  with files.atomic_path(path) as tmp_path:
    with open(tmp_path, "w", encoding="utf-8") as f:
      f.write("\n".join(lines) + "\n")


def _check(output_path: str, num_products: int, image_size: int, fmt: str) -> None:
  if num_products < 1:
    raise errors.KaleidoError(
        f"The demo catalog needs at least 1 product (--num_products), got {num_products}.")
  if image_size < MIN_IMAGE_SIZE:
    raise errors.KaleidoError(
        f"Demo images must be at least {MIN_IMAGE_SIZE} pixels (--image_size), got {image_size}.")
  if fmt not in FORMATS:
    raise errors.KaleidoError(
        f"Unknown demo catalog format {fmt!r} (--format); use one of {', '.join(FORMATS)}.")
  if not output_path.lower().endswith(EXTENSIONS[fmt]):
    raise errors.KaleidoError(
        f"Output {output_path!r} does not end in {' or '.join(EXTENSIONS[fmt])} as format {fmt} "
        "needs; rename it or change --format.")


def make_demo_catalog(output_path: str, num_products: int, seed: int, image_size: int = 256,
                      fmt: str = "h5", first_product: int = 0) -> DemoSummary:
  """Writes products [first_product, first_product + num_products) of the catalog of `seed`,
  and its ground-truth sidecar. Disjoint ranges of one seed make splits with no shared product."""
  _check(output_path, num_products, image_size, fmt)
  if first_product < 0:
    raise errors.KaleidoError(f"--first_product must be >= 0, got {first_product}.")
  folder = os.path.dirname(os.path.abspath(output_path))
  os.makedirs(os.path.join(folder, _image_folder(output_path)) if fmt == "jsonl" else folder,
              exist_ok=True)
  truths: list[groundtruth.ImageTruth] = []
  labels: set[tuple[str, str]] = set()

  def products() -> Iterator[DemoProduct]:
    """Generates the products one at a time, recording their ground truth and labels."""
    for index in range(first_product, first_product + num_products):
      product = make_product(seed, index, image_size)
      truths.extend(_truths(product, len(truths)))
      labels.add((product.garment.category, product.garment.subcategory))
      yield product

  if fmt == "h5":
    fashiongen.write_fashiongen(output_path, map(_fashiongen_product, products()), image_size)
  else:
    _write_lines(output_path, [line for p in products() for line in _jsonl_lines(output_path, p)])
  return DemoSummary(
      path=output_path, groundtruth_path=groundtruth.save(output_path, truths), format=fmt,
      num_products=num_products, num_images=len(truths),
      num_categories=len({category for category, _ in labels}), num_subcategories=len(labels))
