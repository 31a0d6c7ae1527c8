"""The UNet-like foreground segmentation net of the Kaleido Patch Generator (paper footnote 4).

A checkpoint is a directory (the `--output_dir` of data/train_foreground.py) holding:
- `unet_config.json`: {"format": "kaleido-unet-foreground/1", "input_size", "base_filters",
  "depth"}, the architecture the weights belong to.
- `weights.h5`: the model weights as written by `model.save_weights(..., save_format="h5")`, plus
  a `kaleido_train` group with the training step (attribute `step`) and the Adam state (datasets
  `optimizer_0`, ...) so training can resume. It is written under a temporary name and moved into
  place with `os.replace`, so a crash never leaves a half-written checkpoint.
- `train/`: TensorBoard scalars of training (loss, IoU).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time

import cv2
import h5py
import numpy as np
import tensorflow as tf
import tf_keras

from kaleido import errors
from kaleido.utils import files
from kaleido.utils import progress as progress_lib

FORMAT = "kaleido-unet-foreground/1"
CONFIG_FILE = "unet_config.json"
WEIGHTS_FILE = "weights.h5"
TRAIN_GROUP = "kaleido_train"
TRAIN_HINT = "train one with python data/train_foreground.py --output_dir DIR"


class CheckpointError(errors.KaleidoError):
  """A UNet checkpoint directory that is missing, incomplete or inconsistent."""


@dataclasses.dataclass(frozen=True)
class UNetConfig:
  """Architecture of the net; `input_size` must be divisible by 2**depth."""
  input_size: int = 128
  base_filters: int = 16
  depth: int = 3

  def __post_init__(self):
    if self.depth < 1 or self.base_filters < 1:
      raise errors.KaleidoError(f"UNet depth and base_filters must be positive, got {self}.")
    if self.input_size % (2 ** self.depth):
      raise errors.KaleidoError(f"UNet input_size {self.input_size} must be divisible by "
                                f"2**depth = {2 ** self.depth}.")


@dataclasses.dataclass(frozen=True)
class TrainMetrics:
  """Outcome of `train_unet`: steps run and the last logged training loss and IoU."""
  start_step: int
  step: int
  loss: float  # NaN when no step was run
  iou: float  # NaN when no step was run
  seconds: float


def _conv_block(x: tf.Tensor, filters: int, name: str) -> tf.Tensor:
  for i in range(2):
    x = tf_keras.layers.Conv2D(filters, 3, padding="same", use_bias=False,
                               name=f"{name}_conv{i}")(x)
    x = tf_keras.layers.BatchNormalization(name=f"{name}_bn{i}")(x)
    x = tf_keras.layers.ReLU(name=f"{name}_relu{i}")(x)
  return x


def build_unet(input_size: int = 128, base_filters: int = 16, depth: int = 3) -> tf_keras.Model:
  """UNet on (input_size, input_size, 3) floats in [0, 1]; outputs (.., .., 1) foreground logits."""
  UNetConfig(input_size, base_filters, depth)
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


def _build(config: UNetConfig) -> tf_keras.Model:
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


def _config_path(directory: str) -> str:
  return os.path.join(directory, CONFIG_FILE)


def _weights_path(directory: str) -> str:
  return os.path.join(directory, WEIGHTS_FILE)


def read_config(directory: str) -> UNetConfig:
  """The architecture recorded in a checkpoint directory."""
  path = _config_path(directory)
  if not os.path.isfile(path):
    raise CheckpointError(f"UNet checkpoint {directory!r} has no {CONFIG_FILE}; {TRAIN_HINT}.")
  try:
    with open(path, encoding="utf-8") as f:
      payload = json.load(f)
    if payload.get("format") != FORMAT:
      raise ValueError(f"format {payload.get('format')!r}")
    return UNetConfig(int(payload["input_size"]), int(payload["base_filters"]),
                      int(payload["depth"]))
  except (ValueError, KeyError, TypeError, AttributeError) as e:
    raise CheckpointError(f"{path!r} is not a valid {FORMAT} config ({e}); {TRAIN_HINT}.") from e


def _write_config(directory: str, config: UNetConfig) -> None:
  files.write_json(_config_path(directory), {"format": FORMAT, **dataclasses.asdict(config)})


def _load_weights(model: tf_keras.Model, directory: str) -> None:
  path = _weights_path(directory)
  if not os.path.isfile(path):
    raise CheckpointError(f"UNet checkpoint {directory!r} has no {WEIGHTS_FILE}; {TRAIN_HINT}.")
  try:
    model.load_weights(path)
  except (ValueError, KeyError, OSError) as e:
    raise CheckpointError(
        f"The weights in {path!r} do not match the architecture in its {CONFIG_FILE} "
        f"({str(e).splitlines()[0]}); restore the matching config or {TRAIN_HINT}.") from e


def save_checkpoint(directory: str, model: tf_keras.Model, config: UNetConfig, step: int,
                    optimizer: tf_keras.optimizers.Optimizer | None = None) -> None:
  """Writes config and weights (with step and optimizer state) into `directory` atomically."""
  os.makedirs(directory, exist_ok=True)
  _write_config(directory, config)
  with files.atomic_path(_weights_path(directory)) as tmp_path:
    model.save_weights(tmp_path, save_format="h5")
    with h5py.File(tmp_path, "a") as f:
      group = f.create_group(TRAIN_GROUP)
      group.attrs["step"] = step
      for i, variable in enumerate(optimizer.variables if optimizer else ()):
        group.create_dataset(f"optimizer_{i}", data=variable.numpy())


def _restore_training(directory: str, model: tf_keras.Model,
                      optimizer: tf_keras.optimizers.Optimizer) -> int:
  """Loads weights and optimizer state from `directory`; returns the saved step."""
  _load_weights(model, directory)
  optimizer.build(model.trainable_variables)
  with h5py.File(_weights_path(directory), "r") as f:
    group = f.get(TRAIN_GROUP)
    if group is None:
      raise CheckpointError(f"{_weights_path(directory)!r} holds no training state; pass "
                            "resume=False (--noresume) or a new output directory.")
    saved = [group[f"optimizer_{i}"][()] for i in range(len(group))]
    if len(saved) != len(optimizer.variables) or any(
        value.shape != tuple(variable.shape)
        for value, variable in zip(saved, optimizer.variables)):
      raise CheckpointError(f"The optimizer state in {_weights_path(directory)!r} does not match "
                            "the model; pass resume=False (--noresume) or a new output directory.")
    for value, variable in zip(saved, optimizer.variables):
      variable.assign(value)
    return int(group.attrs["step"])


class UNetForeground:
  """Foreground estimator backed by a trained UNet; see `ForegroundEstimator`."""

  def __init__(self, model: tf_keras.Model, config: UNetConfig, batch_size: int = 32):
    self.config = config
    self._batch_size = batch_size
    self._predict = tf.function(
        lambda x: tf.sigmoid(model(tf.cast(x, tf.float32) / 255.0, training=False))[..., 0],
        input_signature=[tf.TensorSpec((None, config.input_size, config.input_size, 3),
                                       tf.uint8)])

  @classmethod
  def from_checkpoint(cls, path: str, batch_size: int = 32) -> UNetForeground:
    """Loads the net saved in checkpoint directory `path`."""
    if not path or not os.path.isdir(path):
      raise CheckpointError(f"UNet checkpoint directory {path!r} does not exist; set "
                            f"unet_checkpoint to a trained one or {TRAIN_HINT}.")
    config = read_config(path)
    model = _build(config)
    _load_weights(model, path)
    return cls(model, config, batch_size)

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


def _batch(images: np.ndarray, masks: np.ndarray, batch_size: int, seed: int,
           step: int) -> tuple[np.ndarray, np.ndarray]:
  """A random batch with random horizontal flips, reproducible from (seed, step)."""
  rng = np.random.default_rng((seed, step))
  index = rng.integers(0, len(images), batch_size)
  x, y = images[index], masks[index]
  flip = rng.random(batch_size) < 0.5
  x[flip], y[flip] = x[flip, :, ::-1], y[flip, :, ::-1]
  return x, y.astype(np.float32)[..., None]


def _train_step_fn(model: tf_keras.Model, optimizer: tf_keras.optimizers.Optimizer):
  """A compiled step: BCE + soft dice loss; returns (loss, batch IoU)."""

  @tf.function
  def step(images: tf.Tensor, masks: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    with tf.GradientTape() as tape:
      logits = model(tf.cast(images, tf.float32) / 255.0, training=True)
      bce = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(masks, logits))
      probabilities = tf.sigmoid(logits)
      dice = 1.0 - (2.0 * tf.reduce_sum(probabilities * masks) + 1.0) / (
          tf.reduce_sum(probabilities) + tf.reduce_sum(masks) + 1.0)
      loss = bce + dice
    gradients = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(gradients, model.trainable_variables))
    predicted = tf.cast(logits > 0.0, tf.float32)
    intersection = tf.reduce_sum(predicted * masks)
    union = tf.reduce_sum(tf.maximum(predicted, masks))
    return loss, tf.math.divide_no_nan(intersection, union)

  return step


def train_unet(images: np.ndarray, masks: np.ndarray, output_dir: str,
               config: UNetConfig = UNetConfig(), steps: int = 1500, batch_size: int = 16,
               learning_rate: float = 1e-3, resume: bool = True, checkpoint_every: int = 250,
               log_every: int = 50, seed: int = 0) -> TrainMetrics:
  """Trains a UNet on (N, H, W, 3) uint8 images and (N, H, W) bool masks until `steps`.

  Checkpoints go to `output_dir` every `checkpoint_every` steps and at the end. With `resume` and
  a checkpoint already there, training continues from its step, weights and optimizer state.
  """
  if len(images) == 0 or len(images) != len(masks):
    raise ValueError(f"Need as many masks as images (>0), got {len(images)} and {len(masks)}.")
  images = resize_images(np.asarray(images, dtype=np.uint8), config.input_size)
  masks = resize_masks(np.asarray(masks, dtype=bool), config.input_size)
  model = _build(config)
  optimizer = tf_keras.optimizers.Adam(learning_rate)
  start_step = 0
  if resume and os.path.isfile(_weights_path(output_dir)):
    saved_config = read_config(output_dir)
    if saved_config != config:
      raise CheckpointError(f"{output_dir!r} holds a checkpoint of {saved_config}, not {config}; "
                            "use matching settings, a new output directory or resume=False "
                            "(--noresume).")
    start_step = _restore_training(output_dir, model, optimizer)
  train_step = _train_step_fn(model, optimizer)
  writer = tf.summary.create_file_writer(os.path.join(output_dir, "train"))
  loss = iou = math.nan
  totals, count = np.zeros(2), 0
  started = time.time()
  progress = progress_lib.Progress(steps, "unet", unit="steps", initial=start_step)
  for step in range(start_step + 1, steps + 1):
    values = train_step(*_batch(images, masks, batch_size, seed, step))
    totals += [float(v) for v in values]
    count += 1
    if step % log_every == 0 or step == steps:
      loss, iou = totals / count
      totals, count = np.zeros(2), 0
      with writer.as_default(step=step):
        tf.summary.scalar("loss", loss)
        tf.summary.scalar("iou", iou)
    progress.update(1, f"loss {loss:.4f} iou {iou:.3f}")
    if step % checkpoint_every == 0 or step == steps:
      save_checkpoint(output_dir, model, config, step, optimizer)
  writer.close()
  progress.close()
  if start_step >= steps:
    print(f"{output_dir!r} is already at step {start_step} >= {steps}; nothing to train.",
          file=sys.stderr)
  return TrainMetrics(start_step, max(start_step, steps), float(loss), float(iou),
                      time.time() - started)
