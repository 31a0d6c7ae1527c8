"""Trains the captioner on a prepared folder's (crop, text) pairs with teacher forcing.

The objective is SAT's (Xu et al. 2015, Eq. 14) per token: for each caption,
(sum_t -log p(y_t) + lambda * sum_i (1 - sum_t alpha_ti)^2) / T, averaged over the batch; the
second term (the doubly stochastic regulariser) asks every grid cell to receive attention over
the caption as a whole. Checkpoints, TensorBoard scalars and alignment pictures go to the output
directory (see checkpoint.py); a rerun resumes from the newest checkpoint.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import os
import shutil
import sys
import time

import numpy as np
import tensorflow as tf
import tf_keras

from kaleido.alignment import captioner as captioner_lib
from kaleido.alignment import checkpoint
from kaleido.alignment import config as config_lib
from kaleido.alignment import generator
from kaleido.alignment import inputs
from kaleido.alignment import pictures
from kaleido.utils import progress as progress_lib

NUM_PICTURE_EXAMPLES = 3
MAX_VALIDATION_BATCHES = 20


@dataclasses.dataclass(frozen=True)
class TrainResult:
  """Steps run and the last window means of the logged values."""
  start_step: int
  step: int
  values: dict[str, float]
  seconds: float


def caption_loss(logits: tf.Tensor, attention: tf.Tensor, targets: tf.Tensor, pad_id: int,
                 attention_reg: float) -> dict[str, tf.Tensor]:
  """SAT's objective (module docstring) and its parts.

  `logits` (B, T, V), `attention` (B, T, N), `targets` (B, T) with `pad_id` after each caption.
  Returns `loss`, the token-mean `cross_entropy`, the example-mean `attention_penalty`
  sum_i (1 - sum_t alpha_ti)^2 and the token `accuracy`.
  """
  real = tf.cast(targets != pad_id, tf.float32)
  tokens = tf.reduce_sum(real, axis=1)
  cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits) * real
  coverage = tf.reduce_sum(attention * real[..., None], axis=1)
  penalty = tf.reduce_sum(tf.square(1.0 - coverage), axis=1)
  per_example = (tf.reduce_sum(cross_entropy, axis=1) + attention_reg * penalty) / tf.maximum(
      tokens, 1.0)
  correct = tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), targets),
                    tf.float32) * real
  total_tokens = tf.maximum(tf.reduce_sum(tokens), 1.0)
  return {"loss": tf.reduce_mean(per_example),
          "cross_entropy": tf.reduce_sum(cross_entropy) / total_tokens,
          "attention_penalty": tf.reduce_mean(penalty),
          "accuracy": tf.reduce_sum(correct) / total_tokens}


def drop_words(input_ids: tf.Tensor, rate: float, pad_id: int) -> tf.Tensor:
  """Teacher-forced inputs with each word after the first token replaced by `pad_id` with
  probability `rate`, so the decoder cannot always guess the next word from the last one and
  has to look at the image."""
  dropped = tf.random.uniform(tf.shape(input_ids)) < rate
  dropped &= tf.range(tf.shape(input_ids)[1])[None, :] > 0
  return tf.where(dropped, tf.cast(pad_id, input_ids.dtype), input_ids)


def teacher_forcing(captioner: captioner_lib.Captioner, batch: dict[str, tf.Tensor],
                    attention_reg: float, training: bool,
                    word_dropout: float = 0.0) -> dict[str, tf.Tensor]:
  """Losses of a batch (`image`, `token_ids`), cut to its longest caption."""
  pad_id = captioner.config.pad_id
  longest = tf.reduce_max(tf.reduce_sum(tf.cast(batch["token_ids"] != pad_id, tf.int32), 1))
  token_ids = batch["token_ids"][:, :longest]
  input_ids = token_ids[:, :-1]
  if training and word_dropout > 0:
    input_ids = drop_words(input_ids, word_dropout, pad_id)
  outputs = captioner({"image": batch["image"], "input_ids": input_ids}, training=training)
  values = caption_loss(outputs["logits"], outputs["attention"], token_ids[:, 1:], pad_id,
                        attention_reg)
  values["gate"] = tf.reduce_mean(outputs["gate"])
  return values


def _prepare_output(train: config_lib.TrainConfig, config: config_lib.CaptionerConfig,
                    vocab_file: str) -> None:
  """Checks a resumed directory holds the same architecture, or clears it for a fresh start."""
  directory = train.output_dir
  if checkpoint.has_config(directory) and train.resume:
    saved = checkpoint.read_config(directory)
    if saved != config:
      raise config_lib.AlignmentError(
          f"{directory!r} holds an AAG checkpoint of other settings ({saved}); use the flags it "
          "was trained with, a new --output_dir, or --noresume to start over.")
  elif not train.resume:
    shutil.rmtree(os.path.join(directory, checkpoint.CHECKPOINT_DIR), ignore_errors=True)
  checkpoint.save_config(directory, config, vocab_file)


class _Trainer:
  """The model, optimizer, checkpoints and summaries of one training run."""

  def __init__(self, train: config_lib.TrainConfig, config: config_lib.CaptionerConfig):
    self.train = train
    self.config = config
    tf_keras.utils.set_random_seed(train.seed)
    self.captioner = captioner_lib.Captioner(config, train.backbone_weights or None,
                                             train.backbone_trainable)
    self.optimizer = tf_keras.optimizers.Adam(train.learning_rate)
    self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    self.manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=self.captioner, optimizer=self.optimizer, step=self.step),
        os.path.join(train.output_dir, checkpoint.CHECKPOINT_DIR),
        max_to_keep=train.max_checkpoints)
    batch_spec = {
        "image": tf.TensorSpec([None, config.image_size, config.image_size, 3], tf.uint8),
        "token_ids": tf.TensorSpec([None, config.max_length], tf.int32)}
    self.train_step = tf.function(self._train_step, input_signature=[batch_spec])
    self.eval_step = tf.function(
        lambda batch: teacher_forcing(self.captioner, batch, train.attention_reg, False),
        input_signature=[batch_spec])

  def _train_step(self, batch: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    variables = self.captioner.trainable_variables
    with tf.GradientTape() as tape:
      values = teacher_forcing(self.captioner, batch, self.train.attention_reg, True,
                               self.train.word_dropout)
    gradients = tape.gradient(values["loss"], variables)
    gradients, norm = tf.clip_by_global_norm(gradients, self.train.clip_norm)
    self.optimizer.apply_gradients(zip(gradients, variables))
    self.step.assign_add(1)
    return {**values, "gradient_norm": norm}

  def restore(self) -> int:
    latest = self.manager.latest_checkpoint
    if latest:
      try:
        self.manager.checkpoint.restore(latest).assert_existing_objects_matched()
      except (AssertionError, ValueError, tf.errors.InvalidArgumentError) as error:
        raise config_lib.AlignmentError(
            f"The checkpoint {latest!r} does not match this captioner "
            f"({str(error).splitlines()[0]}); use a new --output_dir or --noresume.") from error
      print(f"Resumed from {latest} at step {int(self.step.numpy())}.", file=sys.stderr)
    return int(self.step.numpy())

  def validation_values(self, folder: str) -> dict[str, float]:
    """Mean losses over the first batches of a prepared folder (no dropout)."""
    paths = inputs.load_prepared(folder).shard_paths(folder)
    sums: collections.Counter = collections.Counter()
    count = 0
    dataset = inputs.example_dataset(paths, self.config, self.train.batch_size)
    for batch in dataset.take(MAX_VALIDATION_BATCHES):
      values = self.eval_step({"image": batch["image"], "token_ids": batch["token_ids"]})
      sums.update({k: float(v) for k, v in values.items()})
      count += 1
    return {k: v / max(count, 1) for k, v in sums.items()}

  def picture(self, folder: str) -> np.ndarray:
    """Alignment pictures of the first examples of `folder` with the current weights."""
    paths = inputs.load_prepared(folder).shard_paths(folder)
    batch = next(iter(inputs.example_dataset(paths, self.config, NUM_PICTURE_EXAMPLES)))
    aligner = generator.AlignmentGenerator(
        self.captioner, checkpoint.vocab_tokens(self.train.output_dir))
    ids = [row[:n] for row, n in zip(batch["token_ids"].numpy(), batch["length"].numpy())]
    images = batch["image"].numpy()
    return pictures.alignment_picture(images, aligner.align(images, ids), size=128)


def _write(writer, values: dict[str, float], step: int) -> None:
  with writer.as_default():
    for name, value in values.items():
      tf.summary.scalar(name, value, step=step)


def train_captioner(train: config_lib.TrainConfig,
                    config: config_lib.CaptionerConfig) -> TrainResult:
  """Trains until `train.steps`, resuming from the newest checkpoint of `train.output_dir`."""
  manifest = inputs.load_prepared(train.train_data)
  checkpoint.check_matches_data(config, train.output_dir, manifest.vocab_hash,
                                manifest.patch_size, train.train_data)
  if train.validation_data:
    validation = inputs.load_prepared(train.validation_data)
    checkpoint.check_matches_data(config, train.output_dir, validation.vocab_hash,
                                  validation.patch_size, train.validation_data)
  _prepare_output(train, config, manifest.vocab_file)
  trainer = _Trainer(train, config)
  start = trainer.restore()
  started = time.time()
  if start >= train.steps:
    print(f"{train.output_dir!r} is already at step {start} >= {train.steps}; nothing to train.",
          file=sys.stderr)
    return TrainResult(start, start, {}, 0.0)
  # A resumed run draws other batches instead of replaying the first ones.
  dataset = inputs.training_dataset(train.train_data, config, train.batch_size,
                                    seed=train.seed * 1_000_003 + start, flip=train.flip)
  iterator = iter(dataset)
  picture_folder = train.validation_data or train.train_data
  train_writer = tf.summary.create_file_writer(os.path.join(train.output_dir, "train"))
  validation_writer = (tf.summary.create_file_writer(
      os.path.join(train.output_dir, "validation")) if train.validation_data else None)
  progress = progress_lib.Progress(train.steps, "aag", unit="steps", initial=start)
  sums: collections.Counter = collections.Counter()
  window_start, window_steps, last = time.monotonic(), 0, {}
  for step in range(start + 1, train.steps + 1):
    values = {k: float(v) for k, v in trainer.train_step(next(iterator)).items()}
    if not math.isfinite(values["loss"]):
      raise config_lib.AlignmentError(
          f"The captioner loss became {values['loss']} at step {step}; the last good checkpoint "
          f"is kept, lower --learning_rate.")
    sums.update(values)
    window_steps += 1
    progress.update(1, f"loss {values['loss']:.3f}")
    if step % train.log_every == 0 or step == train.steps:
      last = {k: v / window_steps for k, v in sums.items()}
      speed = window_steps * train.batch_size / (time.monotonic() - window_start)
      _write(train_writer, {**last, "examples_per_second": speed}, step)
      sums, window_start, window_steps = collections.Counter(), time.monotonic(), 0
    if step % train.checkpoint_every == 0 or step == train.steps:
      trainer.manager.save(checkpoint_number=step)
      if validation_writer is not None:
        _write(validation_writer, trainer.validation_values(train.validation_data), step)
    if step % train.picture_every == 0:
      with train_writer.as_default():
        tf.summary.image("alignments", trainer.picture(picture_folder)[None], step=step)
  progress.close()
  train_writer.flush()
  return TrainResult(start, train.steps, last, time.time() - started)
