"""The patch generator's UNet foreground net (paper section 3.2, footnote 4) as a training task.

Binary cross-entropy plus soft Dice between the net's per-pixel logits and the target masks, on
random left-right flips of the training images (kaleido.dataloaders.foreground). Held-out images
are scored after training by the entry point (data/train_foreground.py).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras

from kaleido import config as config_lib
from kaleido.dataloaders import foreground as foreground_inputs
from kaleido.model import losses as losses_lib
from kaleido.patches import unet_foreground
from kaleido.training import base_task


class ForegroundTask(base_task.Task):
  """BCE + soft Dice; the IoU of the thresholded masks as the metric. Under several replicas the
  Dice term is the mean of each replica's Dice (BCE and IoU are exact global-batch figures)."""

  def __init__(self, config: config_lib.ExperimentConfig,
               data: foreground_inputs.MaskedImages | None = None):
    """`data`: the images and masks, when the caller has read them already."""
    super().__init__(config)
    self._data = data

  @property
  def data(self) -> foreground_inputs.MaskedImages:
    if self._data is None:
      objective, model = self.config.task.foreground, self.config.model
      self._data = foreground_inputs.read_masked_images(
          self.config.data.train_data, objective.masks, model.input_size,
          objective.validation_fraction, self.config.training.seed)
    return self._data

  @property
  def reported(self) -> frozenset[str]:
    return frozenset({"total", "bce", "dice", "iou"})

  def build_model(self) -> tf_keras.Model:
    return unet_foreground.build(self.config.model)

  def dataset(self, batch_size, seed, input_context, training=True):
    if input_context:
      batch_size = input_context.get_per_replica_batch_size(batch_size)
    images = self.data.train_images if training else self.data.heldout_images
    masks = self.data.train_masks if training else self.data.heldout_masks
    size = self.config.model.input_size
    return foreground_inputs.training_dataset(
        np.stack([unet_foreground.resize_images(image[None], size)[0] for image in images]),
        np.stack([unet_foreground.resize_masks(mask[None], size)[0] for mask in masks]),
        batch_size, seed)

  def model_inputs(self, model, batch):
    return tf.cast(batch["image"], tf.float32) / 255.0

  def replica_losses(self, batch, outputs):
    masks, logits = batch["mask"], tf.cast(outputs, tf.float32)
    bce = tf.nn.sigmoid_cross_entropy_with_logits(masks, logits)
    probabilities = tf.sigmoid(logits)
    dice = 1.0 - (2.0 * tf.reduce_sum(probabilities * masks) + 1.0) / (
        tf.reduce_sum(probabilities) + tf.reduce_sum(masks) + 1.0)
    replicas = tf.distribute.get_replica_context().num_replicas_in_sync
    shares = losses_lib.replica_shares({"bce": losses_lib.weighted_term(bce, tf.ones_like(bce))})
    shares["dice"] = dice / tf.cast(replicas, tf.float32)
    return {**shares, "total": shares["bce"] + shares["dice"]}

  def replica_metrics(self, batch, outputs):
    masks = batch["mask"]
    predicted = tf.cast(tf.cast(outputs, tf.float32) > 0.0, tf.float32)
    return losses_lib.replica_shares({"iou": (tf.reduce_sum(predicted * masks),
                                              tf.reduce_sum(tf.maximum(predicted, masks)))})
