"""Trains the UNet foreground estimator on a catalog and reports held-out mask and box IoU.

  python data/train_foreground.py --input /tmp/demo/catalog.h5 --output_dir /tmp/unet \
      [--masks groundtruth|classical] [--steps 1500] [--batch_size 16] [--input_size 128]

`--masks groundtruth` learns the demo catalog's sidecar masks; `--masks classical` learns the
masks of `ClassicalForeground` on the same images (for catalogs without masks). About 10% of the
products are held out. The output directory is the checkpoint to set as `unet_checkpoint`; rerun
with the same flags to resume, with a larger `--steps` to train on.
"""

from __future__ import annotations

import os
import sys

from absl import app
from absl import flags
import numpy as np

from kaleido import config as config_lib
from kaleido import errors
from kaleido.utils import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("input", None, "Catalog to train on (.h5 Fashion-Gen or .jsonl).")
flags.DEFINE_string("output_dir", None, "Checkpoint directory (also holds TensorBoard logs).")
flags.DEFINE_enum("masks", "groundtruth", list(config_lib.FOREGROUND_MASKS),
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
flags.DEFINE_integer("checkpoint_every", 250, "Steps between checkpoints.")
flags.DEFINE_enum("strategy", "one_device", list(config_lib.STRATEGIES), "tf.distribute strategy.")
flags.DEFINE_integer("seed", 0, "Seed of the held-out split, the initial weights and the batches.")
flags.mark_flags_as_required(["input", "output_dir"])


def _experiment() -> config_lib.ExperimentConfig:
  return config_lib.validate(config_lib.ExperimentConfig(
      task=config_lib.TaskConfig(name=config_lib.FOREGROUND,
                                 foreground=config_lib.ForegroundTrainingConfig(
                                     masks=FLAGS.masks,
                                     validation_fraction=FLAGS.holdout_fraction)),
      data=config_lib.DataConfig(train_data=FLAGS.input),
      model=config_lib.UNetConfig(FLAGS.input_size, FLAGS.base_filters, FLAGS.depth),
      optimizer=config_lib.OptimizerConfig(name="adam", learning_rate=FLAGS.learning_rate,
                                           schedule="constant", warmup_steps=0, clip_norm=0.0),
      training=config_lib.TrainingConfig(
          model_dir=FLAGS.output_dir, train_steps=FLAGS.steps, batch_size=FLAGS.batch_size,
          strategy=FLAGS.strategy, seed=FLAGS.seed, checkpoint_every=FLAGS.checkpoint_every,
          summary_every=50)))


def _evaluate(estimator, images: list[np.ndarray], masks: list[np.ndarray]) -> tuple[float, float]:
  """Mean mask IoU and mean IoU of the masks' tight boxes."""
  from kaleido.demo import foreground_quality  # pylint: disable=g-import-not-at-top
  from kaleido.demo import groundtruth  # pylint: disable=g-import-not-at-top
  from kaleido.patches import unet_foreground  # pylint: disable=g-import-not-at-top
  mask_ious, box_ious = [], []
  for image, truth in zip(images, masks):
    predicted = estimator.masks(image[None])[0]
    mask_ious.append(unet_foreground.mask_iou(predicted, truth))
    box_ious.append(foreground_quality.box_iou(groundtruth.mask_box(predicted),
                                               groundtruth.mask_box(truth)))
  return float(np.mean(mask_ious)), float(np.mean(box_ious))


def _train_and_evaluate() -> None:
  # pylint: disable=g-import-not-at-top
  # TensorFlow work starts after the strategy exists (multi-worker strategies configure it).
  from kaleido.training import distribute
  strategy = distribute.create_strategy(FLAGS.strategy)
  import tensorflow as tf
  from kaleido.dataloaders import foreground as foreground_inputs
  from kaleido.patches import foreground
  from kaleido.patches import unet_foreground
  from kaleido.tasks import foreground_unet
  from kaleido.training import trainer
  # pylint: enable=g-import-not-at-top
  config = _experiment()
  data = foreground_inputs.read_masked_images(FLAGS.input, FLAGS.masks, FLAGS.input_size,
                                              FLAGS.holdout_fraction, FLAGS.seed,
                                              FLAGS.max_images)
  print(f"{len(data.train_images)} training and {len(data.heldout_images)} held-out images "
        f"({len(data.heldout_products)} products), {data.skipped} rows skipped; masks: "
        f"{FLAGS.masks}", file=sys.stderr)
  result = trainer.Trainer(config, foreground_unet.ForegroundTask(config, data), strategy).run()
  trainer.stop_if_interrupted(result)
  estimator = unet_foreground.UNetForeground.from_checkpoint(FLAGS.output_dir)
  mask_iou, box_iou = _evaluate(estimator, data.heldout_images, data.heldout_masks)
  with tf.summary.create_file_writer(os.path.join(FLAGS.output_dir, "heldout")).as_default():
    tf.summary.scalar("mask_iou", mask_iou, step=result.step)
    tf.summary.scalar("box_iou", box_iou, step=result.step)
  print(f"trained to step {result.step}; checkpoint {FLAGS.output_dir}")
  print(f"held-out unet       mask IoU {mask_iou:.3f}  box IoU {box_iou:.3f}")
  if FLAGS.masks == "groundtruth":
    baseline = _evaluate(foreground.ClassicalForeground(), data.heldout_images,
                         data.heldout_masks)
    print(f"held-out classical  mask IoU {baseline[0]:.3f}  box IoU {baseline[1]:.3f}")


@cli.user_errors_as_messages
def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise errors.KaleidoError(f"Unexpected arguments {argv[1:]}; pass everything as --flags.")
  _train_and_evaluate()


if __name__ == "__main__":
  app.run(main)
