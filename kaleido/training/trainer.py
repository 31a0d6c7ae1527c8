"""The training loop of every task: tf.distribute, checkpoints and resume, TensorBoard, guards.

The task (kaleido.tasks: pre-training or a downstream task) gives the model, the data and the
losses. One `train_step` runs on every replica; losses are divided by their global counts (see
kaleido.model.losses) so that the summed replica gradients equal the single-device gradient of the
same global batch.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import os
import shutil
import signal
import sys
import time

import numpy as np
import tensorflow as tf
import tf_keras

from kaleido import config as config_lib
from kaleido import errors
from kaleido.masking import text_masking
from kaleido.model import kaleido_bert
from kaleido.patches import pictures
from kaleido.tasks import factory
from kaleido.training import distribute
from kaleido.training import optimization
from kaleido.training import run_config as run_config_lib
from kaleido.utils import checkpoints
from kaleido.utils import progress as progress_lib

MIXED_PRECISION = ("none", "mixed_bfloat16", "mixed_float16")


class TrainingError(errors.KaleidoError):
  """Training cannot go on (e.g. the loss is no longer finite)."""


@dataclasses.dataclass
class TrainResult:
  """Where a run stopped and its losses averaged over the last summary window."""
  step: int
  losses: dict[str, float]
  interrupted: bool = False


class _StopRequest:
  """Turns SIGTERM into a flag the loop checks after each step (it then saves and exits)."""

  def __init__(self):
    self.requested = False
    self._previous = None

  def __enter__(self):
    if hasattr(signal, "SIGTERM"):
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    return self

  def _handle(self, signum, frame):
    del signum, frame
    self.requested = True

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


class Trainer:
  """Builds model, optimizer and data of the config's task under a strategy and trains it."""

  def __init__(self, config: config_lib.KaleidoConfig, special_ids: text_masking.SpecialIds,
               strategy: tf.distribute.Strategy | None = None,
               run_record: run_config_lib.RunConfig | None = None):
    """`strategy` defaults to the one the config names; multi-worker strategies must be created
    before TensorFlow runs anything, so callers that use TensorFlow first create it up front.
    `run_record`, when given, is saved as the model_dir's run_config.json by the chief."""
    self.config = config
    train = config.train
    if train.mixed_precision not in MIXED_PRECISION:
      raise errors.KaleidoError(f"--mixed_precision={train.mixed_precision!r} is not one of "
                                f"{', '.join(MIXED_PRECISION)}.")
    tf_keras.mixed_precision.set_global_policy(
        "float32" if train.mixed_precision == "none" else train.mixed_precision)
    tf_keras.utils.set_random_seed(train.seed)  # the same initial weights in every process
    self.strategy = strategy or distribute.create_strategy(train.strategy, train.tpu_address)
    distribute.check_batch_size(self.strategy, train.batch_size)
    if train.jit_compile and self.strategy.num_replicas_in_sync > 1:
      raise errors.KaleidoError(
          f"--jit_compile runs on one replica only (the losses' cross-replica sum cannot sit "
          f"inside an XLA cluster), not {self.strategy.num_replicas_in_sync}; drop it or use "
          "--strategy=one_device.")
    self.task = factory.create_task(config, special_ids)
    with self.strategy.scope():
      self.model = self.task.build_model()
      self.optimizer = optimization.create_optimizer(
          train.learning_rate, train.train_steps, train.warmup_steps, train.weight_decay,
          train.mixed_precision, kaleido_bert.pretrained_lr_rules(
              config.model.num_layers, train.pretrained_lr_multiplier, train.layer_lr_decay))
      self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
      self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer,
                                            step=self.step)
    self._checkpoint_dir = os.path.join(train.model_dir, "checkpoints")
    self._writer_dir = distribute.writer_dir(self.strategy, train.model_dir)
    self.manager = tf.train.CheckpointManager(
        self.checkpoint, os.path.join(self._writer_dir, "checkpoints"),
        max_to_keep=train.max_checkpoints)
    self._run_record = run_record
    self._data_seed = train.seed
    self._input_keys = list(self.model.input)
    self._train_step = self._make_train_step()

  def _dataset_fn(self, batch_size: int, context):
    return self.task.dataset(batch_size, self._data_seed, context)

  def _make_train_step(self):
    task, reported = self.task, self.task.reported
    float16 = self.config.train.mixed_precision == "mixed_float16"

    def forward_backward(batch):
      with tf.GradientTape() as tape:
        outputs = self.model({k: batch[k] for k in self._input_keys}, training=True)
        scaled = task.replica_losses(batch, outputs)
        total = scaled["total"]
        loss_for_gradient = self.optimizer.get_scaled_loss(total) if float16 else total
      # Heads of disabled tasks get zeros, not None, so the cross-replica sum can take them.
      gradients = tape.gradient(loss_for_gradient, self.model.trainable_variables,
                                unconnected_gradients=tf.UnconnectedGradients.ZERO)
      return scaled, task.replica_metrics(batch, outputs), gradients

    if self.config.train.jit_compile:
      forward_backward = tf.function(forward_backward, jit_compile=True)

    def replica_step(batch, stop_requested):
      scaled, metrics, gradients = forward_backward(batch)
      variables = self.model.trainable_variables
      # Sum across replicas first, then clip: clipping per replica (what the optimizer would do)
      # makes the update depend on the number of replicas.
      context = tf.distribute.get_replica_context()
      gradients = context.all_reduce(tf.distribute.ReduceOp.SUM, gradients)
      if float16:
        gradients = self.optimizer.get_unscaled_gradients(gradients)
      gradients, _ = tf.clip_by_global_norm(gradients, self.config.train.clip_norm)
      self.optimizer.apply_gradients(zip(gradients, variables),
                                     experimental_aggregate_gradients=False)
      values = {k: v for k, v in {**scaled, **metrics}.items() if k in reported}
      return values, tf.identity(stop_requested)

    @tf.function
    def train_step(batch, stop_requested):
      values, stop = self.strategy.run(replica_step, args=(batch, stop_requested))
      self.step.assign_add(1)
      reduced = {name: self.strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
                 for name, value in values.items()}
      # A SIGTERM seen by any worker stops all of them at the same step.
      return reduced, self.strategy.reduce(tf.distribute.ReduceOp.SUM, stop, axis=None) > 0

    return train_step

  def _restore(self) -> int:
    latest = tf.train.latest_checkpoint(self._checkpoint_dir)
    if latest:
      checkpoints.restore(latest, {"model": self.model, "optimizer": self.optimizer,
                                   "step": self.step},
                          "use another --model_dir or the flags it was trained with",
                          partial=False, error_type=TrainingError)
      print(f"Resumed from {latest} at step {int(self.step.numpy())}.", file=sys.stderr)
    else:
      note = self.task.initialize(self.model)
      if note:
        print(note, file=sys.stderr)
    return int(self.step.numpy())

  def _write_patch_images(self, writer, batch, step: int) -> None:
    patches = self.strategy.experimental_local_results(batch["patches"])[0]
    strips = [pictures.kaleido_strip(p) for p in np.asarray(patches)[:3]]
    with writer.as_default():
      tf.summary.image("kaleido_patches_after_transforms", np.stack(strips), step=step,
                       max_outputs=3)

  def _write_scalars(self, writer, values: dict[str, float], step: int,
                     examples_per_second: float) -> None:
    with writer.as_default():
      for name, value in values.items():
        group = "accuracy" if name.endswith("_accuracy") else "loss"
        tf.summary.scalar(f"{group}/{name}", value, step=step)
      tf.summary.scalar("learning_rate",
                        optimization.current_learning_rate(self.optimizer), step=step)
      tf.summary.scalar("examples_per_second", examples_per_second, step=step)

  def _check_finite(self, values: dict[str, float], step: int) -> None:
    if not math.isfinite(values["total"]):
      raise TrainingError(
          f"The loss became {values['total']} at step {step} "
          f"({', '.join(f'{k}={v:.4g}' for k, v in values.items())}); training stopped and the "
          f"last good checkpoint ({tf.train.latest_checkpoint(self._checkpoint_dir) or 'none'}) "
          "is kept. Lower --learning_rate or use --mixed_precision=none.")

  def run(self) -> TrainResult:
    """Trains until `train_steps`, resuming from the latest checkpoint of `model_dir`."""
    train = self.config.train
    start = self._restore()
    if start >= train.train_steps:
      print(f"Nothing to do: the checkpoint is already at step {start} >= --train_steps.",
            file=sys.stderr)
      return TrainResult(step=start, losses={})
    # A resumed run draws new examples and masks instead of replaying those of the first steps.
    self._data_seed = train.seed * 1_000_003 + start
    iterator = iter(distribute.distribute_dataset(self.strategy, self._dataset_fn,
                                                  train.batch_size, train.input_mode))
    chief = distribute.is_chief(self.strategy)
    if chief and self._run_record:
      os.makedirs(train.model_dir, exist_ok=True)
      run_config_lib.save(train.model_dir, self._run_record)
    writer = (tf.summary.create_file_writer(os.path.join(train.model_dir, "train")) if chief
              else tf.summary.create_noop_writer())
    progress = progress_lib.Progress(train.train_steps, "train", unit="steps", initial=start)
    window = _Window()
    last: dict[str, float] = {}
    step, stopped = start, False
    with _StopRequest() as stop:
      while step < train.train_steps and not stopped:
        batch = next(iterator)
        if chief and (step == start or step % train.image_summary_every == 0):
          self._write_patch_images(writer, batch, step)
        values, stop_all = self._train_step(batch, tf.constant(float(stop.requested)))
        values = {k: float(v) for k, v in values.items()}
        step, stopped = step + 1, bool(stop_all)
        self._check_finite(values, step)
        window.add(values)
        progress.update(1, f"loss {values['total']:.3f}")
        if step % train.summary_every == 0 or step == train.train_steps:
          last = window.means()
          self._write_scalars(writer, last, step, window.steps_per_second() * train.batch_size)
          window = _Window()
        if step % train.checkpoint_every == 0 or step == train.train_steps or stopped:
          self.manager.save(checkpoint_number=step)
    progress.close()
    writer.flush()
    if not chief:
      shutil.rmtree(self._writer_dir, ignore_errors=True)
    if stopped:
      print(f"Stopped by SIGTERM at step {step}; checkpoint saved.", file=sys.stderr)
    return TrainResult(step=step, losses=last or window.means(), interrupted=stopped)


class _Window:
  """Sums of the logged values since the last summary, for window means and speed."""

  def __init__(self):
    self._sums: collections.Counter = collections.Counter()
    self._steps = 0
    self._start = time.monotonic()

  def add(self, values: dict[str, float]) -> None:
    self._sums.update(values)
    self._steps += 1

  def means(self) -> dict[str, float]:
    return {name: total / self._steps for name, total in self._sums.items()}

  def steps_per_second(self) -> float:
    return self._steps / max(time.monotonic() - self._start, 1e-9)
