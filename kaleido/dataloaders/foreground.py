"""The UNet foreground net's data: catalog images with target masks, split by product.

Target masks are the demo catalog's ground-truth sidecar (`groundtruth`) or the classical
estimator's masks on the same images (`classical`, for catalogs without masks). A product's
views all land on the same side of the split (a hash of seed and product id).
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import tensorflow as tf

from kaleido import errors
from kaleido.data import catalogs
from kaleido.data import splits
from kaleido.demo import groundtruth
from kaleido.patches import foreground
from kaleido.patches import unet_foreground

READ_CHUNK = 256


@dataclasses.dataclass
class MaskedImages:
  """Training rows at the net's input size and held-out rows at full size."""
  train_images: list[np.ndarray] = dataclasses.field(default_factory=list)
  train_masks: list[np.ndarray] = dataclasses.field(default_factory=list)
  heldout_images: list[np.ndarray] = dataclasses.field(default_factory=list)
  heldout_masks: list[np.ndarray] = dataclasses.field(default_factory=list)
  heldout_products: set[str] = dataclasses.field(default_factory=set)
  skipped: int = 0


def _sidecar_masks(path: str) -> dict[int, np.ndarray]:
  """Ground-truth foreground masks of the demo catalog by row index."""
  if not os.path.exists(groundtruth.sidecar_path(path)):
    raise errors.KaleidoError(
        f"Catalog {path!r} has no ground-truth sidecar {groundtruth.sidecar_path(path)!r} "
        "(only data/make_demo.py writes one); use --masks classical.")
  try:
    return {truth.row: truth.foreground_mask for truth in groundtruth.load(path)}
  except (ValueError, KeyError, TypeError) as e:
    raise errors.KaleidoError(
        f"Cannot read the ground-truth sidecar of {path!r} ({e}); regenerate it with "
        "data/make_demo.py or use --masks classical.") from e


def read_masked_images(path: str, masks: str, input_size: int, holdout_fraction: float,
                       seed: int, max_images: int = 0) -> MaskedImages:
  """Reads the usable rows of catalog `path` with their masks and splits them by product."""
  catalog = catalogs.open_catalog(path)
  classical = foreground.ClassicalForeground()
  split = MaskedImages()
  try:
    truth = _sidecar_masks(path) if masks == "groundtruth" else None
    stop = min(len(catalog), max_images) if max_images > 0 else len(catalog)
    for start in range(0, stop, READ_CHUNK):
      for row in catalog.read(start, min(start + READ_CHUNK, stop)):
        if row.image is None or (truth is not None and row.index not in truth):
          split.skipped += 1
          continue
        mask = truth[row.index] if truth is not None else classical.mask(row.image)
        if mask.shape != row.image.shape[:2]:
          raise errors.KaleidoError(
              f"The sidecar mask of row {row.index} is {mask.shape} but its image is "
              f"{row.image.shape[:2]}; regenerate the catalog with data/make_demo.py.")
        if splits.in_holdout(row.product_id, holdout_fraction, seed):
          split.heldout_images.append(row.image)
          split.heldout_masks.append(mask)
          split.heldout_products.add(row.product_id)
        else:
          split.train_images.append(unet_foreground.resize_images(row.image[None],
                                                                  input_size)[0])
          split.train_masks.append(unet_foreground.resize_masks(mask[None], input_size)[0])
  finally:
    catalog.close()
  if not split.train_images or not split.heldout_images:
    raise errors.KaleidoError(
        f"Catalog {path!r} gives {len(split.train_images)} training and "
        f"{len(split.heldout_images)} held-out images with masks; both must be non-empty "
        "(use more rows or another --holdout_fraction).")
  return split


def training_dataset(images: np.ndarray, masks: np.ndarray, batch_size: int,
                     seed: int | None) -> tf.data.Dataset:
  """Endless shuffled batches of {image: (B, S, S, 3) uint8, mask: (B, S, S, 1) float32}, each
  example flipped left-right with probability 1/2 (stateless, from `seed`)."""
  base_seed = 0 if seed is None else seed

  def flip(index, image, mask):
    flipped = tf.random.stateless_uniform([], tf.stack([tf.constant(base_seed, tf.int64),
                                                        index])) < 0.5
    image = tf.where(flipped, image[:, ::-1], image)
    mask = tf.where(flipped, mask[:, ::-1], mask)
    return {"image": image, "mask": tf.cast(mask, tf.float32)[..., tf.newaxis]}

  dataset = tf.data.Dataset.from_tensor_slices((images, masks)).repeat().shuffle(
      len(images), seed=seed).enumerate().map(lambda i, pair: flip(i, *pair),
                                              num_parallel_calls=tf.data.AUTOTUNE,
                                              deterministic=True)
  return dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
