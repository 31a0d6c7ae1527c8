"""The UNet-like foreground segmentation net of the Kaleido Patch Generator (paper footnote 4).

It is trained as a task of the one trainer (kaleido.tasks.foreground_unet, data/train_foreground.py);
its model_dir holds `run_config.json` (whose model is the `UNetConfig`) and `checkpoints/`.
Directories written before that (`unet_config.json` {"format": "kaleido-unet-foreground/1",
"input_size", "base_filters", "depth"} and `weights.h5`) still load.
"""

from __future__ import annotations

import os

import cv2
import numpy as np
import tensorflow as tf
import tf_keras

from kaleido import config as config_lib
from kaleido import errors
from kaleido.utils import restoring

TRAIN_HINT = "train one with python data/train_foreground.py --output_dir DIR"


class CheckpointError(errors.KaleidoError):
  """A UNet checkpoint directory that is missing, incomplete or inconsistent."""

def _conv_block(x: tf.Tensor, filters: int, name: str) -> tf.Tensor:
  for i in range(2):
    x = tf_keras.layers.Conv2D(filters, 3, padding="same", use_bias=False,
                               name=f"{name}_conv{i}")(x)
    x = tf_keras.layers.BatchNormalization(name=f"{name}_bn{i}")(x)
    x = tf_keras.layers.ReLU(name=f"{name}_relu{i}")(x)
  return x


def build_unet(input_size: int = 128, base_filters: int = 16, depth: int = 3) -> tf_keras.Model:
  """UNet on (input_size, input_size, 3) floats in [0, 1]; outputs (.., .., 1) foreground logits."""
  inputs = tf_keras.Input((input_size, input_size, 3), name="image")
  x = inputs
  skips = []
  for level in range(depth):
    x = _conv_block(x, base_filters * 2 ** level, f"down{level}")
    skips.append(x)
    x = tf_keras.layers.MaxPool2D(name=f"down{level}_pool")(x)
  x = _conv_block(x, base_filters * 2 ** depth, "bottom")
  for level in reversed(range(depth)):
    filters = base_filters * 2 ** level
    x = tf_keras.layers.Conv2DTranspose(filters, 2, strides=2, name=f"up{level}_upsample")(x)
    x = tf_keras.layers.Concatenate(name=f"up{level}_concat")([x, skips[level]])
    x = _conv_block(x, filters, f"up{level}")
  logits = tf_keras.layers.Conv2D(1, 1, name="logits")(x)
  return tf_keras.Model(inputs, logits, name="unet_foreground")


def build(config: config_lib.UNetConfig) -> tf_keras.Model:
  return build_unet(config.input_size, config.base_filters, config.depth)


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
  """(B, H, W, 3) uint8 -> (B, size, size, 3) uint8."""
  if images.shape[1:3] == (size, size):
    return images
  return np.stack([cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
                   for image in images])


def resize_masks(masks: np.ndarray, size: int) -> np.ndarray:
  """(B, H, W) bool -> (B, size, size) bool."""
  if masks.shape[1:3] == (size, size):
    return masks
  return np.stack([cv2.resize(mask.astype(np.float32), (size, size),
                              interpolation=cv2.INTER_AREA) >= 0.5 for mask in masks])


def mask_iou(predicted: np.ndarray, truth: np.ndarray) -> float:
  """Intersection over union of two boolean masks; 1.0 when both are empty."""
  union = np.logical_or(predicted, truth).sum()
  return float(np.logical_and(predicted, truth).sum() / union) if union else 1.0


def load_model(directory: str) -> tuple[tf_keras.Model, config_lib.UNetConfig]:
  """The trained net of a UNet directory and its architecture."""
  if not directory or not os.path.isdir(directory):
    raise CheckpointError(f"UNet checkpoint directory {directory!r} does not exist; set "
                          f"unet_checkpoint to a trained one or {TRAIN_HINT}.")
  if not os.path.isfile(os.path.join(directory, config_lib.RUN_CONFIG_NAME)):
    raise CheckpointError(f"UNet checkpoint {directory!r} has no {config_lib.RUN_CONFIG_NAME}; "
                          f"{TRAIN_HINT}.")
  config = config_lib.load(directory).model
  if not isinstance(config, config_lib.UNetConfig):
    raise CheckpointError(f"{directory!r} holds a {config.kind} run, not a UNet; {TRAIN_HINT}.")
  model = build(config)
  try:
    latest = restoring.latest_checkpoint(directory)
  except errors.KaleidoError as error:
    raise CheckpointError(f"{error} ({TRAIN_HINT})") from error
  restoring.restore(latest, {"model": model}, f"its run_config.json differs; {TRAIN_HINT}",
                    error_type=CheckpointError)
  return model, config


class UNetForeground:
  """Foreground estimator backed by a trained UNet; see `ForegroundEstimator`."""

  def __init__(self, model: tf_keras.Model, config: config_lib.UNetConfig, batch_size: int = 32):
    self.config = config
    self._batch_size = batch_size
    self._predict = tf.function(
        lambda x: tf.sigmoid(model(tf.cast(x, tf.float32) / 255.0, training=False))[..., 0],
        input_signature=[tf.TensorSpec((None, config.input_size, config.input_size, 3),
                                       tf.uint8)])

  @classmethod
  def from_checkpoint(cls, path: str, batch_size: int = 32) -> UNetForeground:
    """Loads the net of UNet directory `path`."""
    return cls(*load_model(path), batch_size)

  def probabilities(self, images: np.ndarray) -> np.ndarray:
    """(B, H, W, 3) uint8 RGB -> (B, H, W) float32 foreground probabilities."""
    height, width = images.shape[1:3]
    if not len(images):
      return np.zeros((0, height, width), dtype=np.float32)
    small = resize_images(images, self.config.input_size)
    outputs = [self._predict(small[i:i + self._batch_size]).numpy()
               for i in range(0, len(small), self._batch_size)]
    return np.stack([cv2.resize(p, (width, height), interpolation=cv2.INTER_LINEAR)
                     for p in np.concatenate(outputs)])

  def masks(self, images: np.ndarray) -> np.ndarray:
    """(B, H, W, 3) uint8 RGB -> (B, H, W) bool."""
    return self.probabilities(images) >= 0.5
