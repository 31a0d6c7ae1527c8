"""Trains the UNet foreground estimator on a catalog and reports held-out mask and box IoU.

  python data/train_foreground.py --input /tmp/demo/catalog.h5 --output_dir /tmp/unet \
      [--masks groundtruth|classical] [--steps 1500] [--batch_size 16] [--input_size 128]

`--masks groundtruth` learns the demo catalog's sidecar masks; `--masks classical` learns the
masks of `ClassicalForeground` on the same images (for catalogs without masks). About 10% of the
products are held out. The output directory is the checkpoint to set as `unet_checkpoint`; rerun
with the same flags to resume, with a larger `--steps` to train on.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import zlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app
from absl import flags
import numpy as np
import tensorflow as tf

from kaleido import errors
from kaleido.data import catalog as catalog_lib
from kaleido.demo import groundtruth
from kaleido.patches import foreground
from kaleido.patches import quality
from kaleido.patches import unet_foreground
from kaleido.utils import cli
# pylint: enable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS
flags.DEFINE_string("input", None, "Catalog to train on (.h5 Fashion-Gen or .jsonl).")
flags.DEFINE_string("output_dir", None, "Checkpoint directory (also holds TensorBoard logs).")
flags.DEFINE_enum("masks", "groundtruth", ["groundtruth", "classical"],
                  "Training masks: the demo ground-truth sidecar, or ClassicalForeground's.")
flags.DEFINE_integer("steps", 1500, "Total training steps (a resumed run continues to this).",
                     lower_bound=1)
flags.DEFINE_integer("batch_size", 16, "Images per training step.", lower_bound=1)
flags.DEFINE_integer("input_size", 128, "Side the net sees images at.")
flags.DEFINE_integer("base_filters", 16, "Filters of the first UNet level (doubling per level).")
flags.DEFINE_integer("depth", 3, "Number of UNet down-sampling levels.")
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.", lower_bound=0.0)
flags.DEFINE_integer("max_images", 0, "Use at most this many catalog rows (0: all).",
                     lower_bound=0)
flags.DEFINE_float("holdout_fraction", 0.1, "Fraction of products held out for evaluation.",
                   lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_bool("resume", True, "Continue from a checkpoint in --output_dir.")
flags.DEFINE_integer("seed", 0, "Seed of the held-out split and the batches.")
flags.mark_flags_as_required(["input", "output_dir"])

READ_CHUNK = 256


@dataclasses.dataclass
class Split:
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


def _is_heldout(product_id: str, fraction: float, seed: int) -> bool:
  """Deterministic per-product choice, so all views of a product land on the same side."""
  return zlib.crc32(f"{seed}:{product_id}".encode()) % 10000 < fraction * 10000


def _read_split(path: str) -> Split:
  """Reads the usable catalog rows with their masks and splits them by product."""
  catalog = catalog_lib.open_catalog(path)
  classical = foreground.ClassicalForeground()
  split = Split()
  try:
    truth = _sidecar_masks(path) if FLAGS.masks == "groundtruth" else None
    stop = min(len(catalog), FLAGS.max_images) if FLAGS.max_images > 0 else len(catalog)
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
        if _is_heldout(row.product_id, FLAGS.holdout_fraction, FLAGS.seed):
          split.heldout_images.append(row.image)
          split.heldout_masks.append(mask)
          split.heldout_products.add(row.product_id)
        else:
          size = FLAGS.input_size
          split.train_images.append(unet_foreground.resize_images(row.image[None], size)[0])
          split.train_masks.append(unet_foreground.resize_masks(mask[None], size)[0])
  finally:
    catalog.close()
  if not split.train_images or not split.heldout_images:
    raise errors.KaleidoError(
        f"Catalog {path!r} gives {len(split.train_images)} training and "
        f"{len(split.heldout_images)} held-out images with masks; both must be non-empty "
        "(use more rows or another --holdout_fraction).")
  return split


def _evaluate(estimator: foreground.ForegroundEstimator, images: list[np.ndarray],
              masks: list[np.ndarray]) -> tuple[float, float]:
  """Mean mask IoU and mean IoU of the masks' tight boxes."""
  mask_ious, box_ious = [], []
  for image, truth in zip(images, masks):
    predicted = estimator.masks(image[None])[0]
    mask_ious.append(unet_foreground.mask_iou(predicted, truth))
    box_ious.append(quality.box_iou(groundtruth.mask_box(predicted), groundtruth.mask_box(truth)))
  return float(np.mean(mask_ious)), float(np.mean(box_ious))


def _train_and_evaluate() -> None:
  config = unet_foreground.UNetConfig(FLAGS.input_size, FLAGS.base_filters, FLAGS.depth)
  split = _read_split(FLAGS.input)
  print(f"{len(split.train_images)} training and {len(split.heldout_images)} held-out images "
        f"({len(split.heldout_products)} products), {split.skipped} rows skipped; masks: "
        f"{FLAGS.masks}", file=sys.stderr)
  metrics = unet_foreground.train_unet(
      np.stack(split.train_images), np.stack(split.train_masks), FLAGS.output_dir, config,
      steps=FLAGS.steps, batch_size=FLAGS.batch_size, learning_rate=FLAGS.learning_rate,
      resume=FLAGS.resume, seed=FLAGS.seed)
  estimator = unet_foreground.UNetForeground.from_checkpoint(FLAGS.output_dir)
  mask_iou, box_iou = _evaluate(estimator, split.heldout_images, split.heldout_masks)
  with tf.summary.create_file_writer(os.path.join(FLAGS.output_dir, "heldout")).as_default():
    tf.summary.scalar("mask_iou", mask_iou, step=metrics.step)
    tf.summary.scalar("box_iou", box_iou, step=metrics.step)
  print(f"trained from step {metrics.start_step} to {metrics.step} in {metrics.seconds:.0f} s; "
        f"checkpoint {FLAGS.output_dir}")
  print(f"held-out unet       mask IoU {mask_iou:.3f}  box IoU {box_iou:.3f}")
  if FLAGS.masks == "groundtruth":
    baseline = _evaluate(foreground.ClassicalForeground(), split.heldout_images,
                         split.heldout_masks)
    print(f"held-out classical  mask IoU {baseline[0]:.3f}  box IoU {baseline[1]:.3f}")


@cli.user_errors_as_messages
def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise errors.KaleidoError(f"Unexpected arguments {argv[1:]}; pass everything as --flags.")
  _train_and_evaluate()


if __name__ == "__main__":
  app.run(main)
