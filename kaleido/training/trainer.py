"""The one training loop of every task: tf.distribute, checkpoints and resume, TensorBoard, guards.

The task (a kaleido.training.base_task.Task: pre-training, a downstream task, the alignment
captioner, the UNet foreground net, the patch CNN's word pre-training) gives the model, the data
and the losses; the experiment config says how to train. One `train_step` runs on every replica;
losses are divided by their global counts (see kaleido.model.losses) so that the summed replica
gradients equal the single-device gradient of the same global batch.
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
from kaleido.feature_cache import store as cache_store
from kaleido.records import reader
from kaleido.training import base_task
from kaleido.training import distribute
from kaleido.training import optimization
from kaleido.utils import files
from kaleido.utils import interrupts
from kaleido.utils import progress as progress_lib
from kaleido.utils import restoring
from kaleido.utils import tracing


class TrainingError(errors.KaleidoError):
  """Training cannot go on (e.g. the loss is no longer finite)."""


EVAL_SEED = 20210601  # every evaluation draws the same held-out batches, masks and transforms
BEST_DIR = "best"
BEST_RECORD = "best.json"


@dataclasses.dataclass
class TrainResult:
  """Where a run stopped, its losses averaged over the last summary window and the figures of
  its last held-out evaluation (empty without one)."""
  step: int
  losses: dict[str, float]
  interrupted: bool = False
  stop_signal: int = 0  # the signal that stopped it early (SIGTERM or SIGINT), 0 if none
  validation: dict[str, float] = dataclasses.field(default_factory=dict)


def stop_if_interrupted(result: TrainResult) -> None:
  """Raises errors.Stopped when `result`'s run was stopped early by a signal, so that callers do
  no work that needs the finished run (its checkpoint is saved; a rerun goes on from it)."""
  if result.interrupted:
    raise errors.Stopped(128 + (result.stop_signal or signal.SIGTERM))


class Trainer:
  """Builds model, optimizer and data of the config's task under a strategy and trains it."""

  def __init__(self, config: config_lib.ExperimentConfig, task: base_task.Task,
               strategy: tf.distribute.Strategy | None = None):
    """`strategy` defaults to the one the config names; multi-worker strategies must be created
    before TensorFlow runs anything, so callers that use TensorFlow first create it up front.
    The chief saves `config` whole as the model_dir's run_config.json when training starts."""
    self.config = config
    self.task = task
    training = config.training
    tf_keras.mixed_precision.set_global_policy(
        "float32" if training.mixed_precision == "none" else training.mixed_precision)
    tf_keras.utils.set_random_seed(training.seed)  # the same initial weights in every process
    self.strategy = strategy or distribute.create_strategy(training.strategy,
                                                           training.tpu_address)
    config_lib.validate(config, self.strategy.num_replicas_in_sync)
    with self.strategy.scope():
      self.model = task.build_model()
      self.optimizer = optimization.create_optimizer(
          config.optimizer, training.train_steps, training.mixed_precision, task.lr_rules())
      self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
      self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer,
                                            step=self.step)
    self._checkpoint_dir = os.path.join(training.model_dir, "checkpoints")
    self._writer_dir = distribute.writer_dir(self.strategy, training.model_dir)
    chief = distribute.is_chief(self.strategy)
    if chief:
      for folder in (self._checkpoint_dir, os.path.join(self._writer_dir, BEST_DIR)):
        restoring.remove_unfinished_saves(folder)
        restoring.repair_state_file(folder)
    # Damaged newer checkpoints are moved aside (by the chief) before the manager reads the
    # checkpoint list, so it goes on from the newest one that reads in full.
    self._resume_from = restoring.newest_readable(self._checkpoint_dir, set_aside=chief)
    self._restore_status = None  # the load status of _resume_from, once restored
    self.manager = tf.train.CheckpointManager(
        self.checkpoint, os.path.join(self._writer_dir, "checkpoints"),
        max_to_keep=training.max_checkpoints)
    self._data_seed = training.seed
    self._train_step = self._make_train_step()
    self._eval_step = self._make_eval_step()
    # Every worker takes part in a save; only the chief's copy is kept (see writer_dir).
    self._best = _BestCheckpoint(self.checkpoint, self._writer_dir, config.evaluation.keep_best,
                                 chief)
    self._all_finite = tracing.function(self._weights_are_finite)

  def _weights_are_finite(self) -> tf.Tensor:
    """Whether every model weight and optimizer variable (moments, step) is finite."""
    values = [v for v in self.model.weights + self.optimizer.variables()
              if v.dtype.is_floating]
    return tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in values])

  def _save(self, step: int, values: dict[str, float]) -> None:
    """Saves a checkpoint at `step`, never one holding a non-finite weight or slot."""
    if not bool(self._all_finite()):
      raise TrainingError(
          f"The weights or optimizer moments became non-finite at step {step} (loss "
          f"{values['total']:.4g}); nothing was saved from that state, and the newest "
          f"checkpoint ({self.manager.latest_checkpoint or 'none'}) holds finite values. Lower "
          "--learning_rate (or use --mixed_precision=none) and rerun: it resumes from there.")
    self.manager.save(checkpoint_number=step)

  def _dataset_fn(self, batch_size: int, context):
    return self.task.dataset(batch_size, self._data_seed, context)

  def _make_train_step(self):
    task, reported = self.task, self.task.reported
    float16 = self.config.training.mixed_precision == "mixed_float16"
    clip_norm = self.config.optimizer.clip_norm

    def forward_backward(batch, phase):
      with tf.GradientTape() as tape:
        outputs = task.forward(self.model, batch, training=True, phase=phase)
        scaled = task.replica_losses(batch, outputs)
        total = scaled["total"]
        loss_for_gradient = self.optimizer.get_scaled_loss(total) if float16 else total
      # Heads of disabled tasks get zeros, not None, so the cross-replica sum can take them.
      gradients = tape.gradient(loss_for_gradient, self.model.trainable_variables,
                                unconnected_gradients=tf.UnconnectedGradients.ZERO)
      return scaled, task.replica_metrics(batch, outputs), gradients

    if self.config.training.jit_compile:
      forward_backward = tracing.function(forward_backward, jit_compile=True)

    def replica_step(batch, stop_requested, phase):
      scaled, metrics, gradients = forward_backward(batch, phase)
      variables = self.model.trainable_variables
      # Sum across replicas first, then clip: clipping per replica (what the optimizer would do)
      # makes the update depend on the number of replicas.
      context = tf.distribute.get_replica_context()
      gradients = context.all_reduce(tf.distribute.ReduceOp.SUM, gradients)
      if float16:
        gradients = self.optimizer.get_unscaled_gradients(gradients)
      if clip_norm:
        gradients, _ = tf.clip_by_global_norm(gradients, clip_norm)
      optimization.apply_summed_gradients(self.optimizer, list(zip(gradients, variables)))
      values = {k: v for k, v in {**scaled, **metrics}.items() if k in reported}
      return values, tf.identity(stop_requested)

    # Batches whose text is cut to its longest (DataConfig.trim_text) differ in length: one
    # trace with that axis unknown serves them all. Each of the task's phases (a Python value)
    # has its own trace.
    @tracing.function(reduce_retracing=True)
    def train_step(batch, stop_requested, phase):
      values, stop = self.strategy.run(replica_step, args=(batch, stop_requested, phase))
      self.step.assign_add(1)
      reduced = {name: self.strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
                 for name, value in values.items()}
      # A SIGTERM seen by any worker stops all of them at the same step.
      return reduced, self.strategy.reduce(tf.distribute.ReduceOp.SUM, stop, axis=None) > 0

    return train_step

  def _make_eval_step(self):
    task, reported = self.task, self.task.reported

    def replica_step(batch):
      outputs = task.forward(self.model, batch, training=False)
      values = {**task.replica_losses(batch, outputs), **task.replica_metrics(batch, outputs)}
      return {k: v for k, v in values.items() if k in reported}

    @tracing.function(reduce_retracing=True)
    def eval_step(batch):
      values = self.strategy.run(replica_step, args=(batch,))
      return {name: self.strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
              for name, value in values.items()}

    return eval_step

  def evaluate(self) -> dict[str, float]:
    """The task's losses and metrics on `eval_steps` held-out batches (`data.eval_data`), means
    over the batches; the same batches at every call."""
    training = self.config.training
    dataset = distribute.distribute_dataset(
        self.strategy, lambda size, context: self.task.dataset(size, EVAL_SEED, context,
                                                                training=False),
        training.batch_size, training.input_mode)
    iterator = iter(dataset)
    window = _Window()
    for _ in range(self.config.evaluation.eval_steps):
      window.add({k: float(v) for k, v in self._eval_step(next(iterator)).items()})
    return window.means()

  def _next_batch(self, iterator):
    """The next training batch; a corrupt record is one sentence naming the check to run."""
    try:
      return next(iterator)
    except tf.errors.DataLossError as error:
      folder = self.task.data_folder(training=True)
      first_line = str(error).splitlines()[0][:200]
      if cache_store.SHARD_PREFIX in first_line:
        raise TrainingError(f"A feature cache shard is corrupt ({first_line}); delete that "
                            "cache folder and rerun: it is rebuilt.") from error
      raise TrainingError(
          f"A record of {folder} is corrupt ({first_line[:160]}); find the "
          f"shard with python data/prepare.py --verify --output_dir {folder} and re-prepare "
          "it.") from error
    except tf.errors.InvalidArgumentError as error:
      if reader.CACHE_MISMATCH not in str(error):
        raise
      raise TrainingError(
          f"A feature cache of {self.task.data_folder(training=True)} does not match its "
          "records (an example of another image); delete the folder's feature_cache/ (or "
          "--feature_cache_dir) and rerun: it is rebuilt.") from error

  def _restore(self) -> int:
    latest = self._resume_from
    if latest:
      self._restore_status = restoring.restore(
          latest, {"model": self.model, "optimizer": self.optimizer, "step": self.step},
          "use another --model_dir or the flags it was trained with", partial=False,
          error_type=TrainingError)
      print(f"Resumed from {latest} at step {int(self.step.numpy())}.", file=sys.stderr)
    else:
      note = self.task.initialize(self.model)
      if note:
        print(note, file=sys.stderr)
    return int(self.step.numpy())

  def _write_images(self, writer, batch, step: int) -> None:
    local = {key: np.asarray(self.strategy.experimental_local_results(value)[0])
             for key, value in batch.items()}
    with writer.as_default():
      for tag, images in self.task.summary_images(self.model, local).items():
        tf.summary.image(tag, images, step=step, max_outputs=len(images))

  def _write_validation(self, writer, values: dict[str, float], step: int) -> None:
    with writer.as_default():
      for name, value in values.items():
        tf.summary.scalar(f"validation/{name}", value, step=step)

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
          f"newest checkpoint ({self.manager.latest_checkpoint or 'none'}), whose weights are "
          "all finite, is kept. Lower --learning_rate or use --mixed_precision=none.")

  def run(self) -> TrainResult:
    """Trains until `train_steps`, resuming from the latest checkpoint of `model_dir`."""
    train = self.config.training
    start = self._restore()
    if start >= train.train_steps:
      # No update runs, so the optimizer's slots are never created to take their saved values.
      self._restore_status.expect_partial()
      print(f"Nothing to do: the checkpoint is already at step {start} >= --train_steps.",
            file=sys.stderr)
      return TrainResult(step=start, losses={})
    self.task.prepare_inputs(self.model, distribute.worker_index(self.strategy))
    # A resumed run draws new examples and masks instead of replaying those of the first steps.
    self._data_seed = train.seed * 1_000_003 + start
    iterator = iter(distribute.distribute_dataset(self.strategy, self._dataset_fn,
                                                  train.batch_size, train.input_mode))
    chief = distribute.is_chief(self.strategy)
    if chief:
      os.makedirs(train.model_dir, exist_ok=True)
      config_lib.save(self.config)
    writer = (tf.summary.create_file_writer(os.path.join(train.model_dir, "train")) if chief
              else tf.summary.create_noop_writer())
    progress = progress_lib.Progress(train.train_steps, self.config.task.name, unit="steps",
                                     initial=start)
    window = _Window()
    last: dict[str, float] = {}
    validation: dict[str, float] = {}
    eval_every = self.config.evaluation.eval_every
    step, stopped = start, False
    with interrupts.StopRequest() as stop:
      while step < train.train_steps and not stopped:
        batch = self._next_batch(iterator)
        if chief and (step == start or step % train.image_summary_every == 0):
          self._write_images(writer, batch, step)
        values, stop_all = self._train_step(batch, tf.constant(float(stop.requested)),
                                            self.task.phase(step))
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
          self._save(step, values)
        if eval_every and (step % eval_every == 0 or step == train.train_steps):
          validation = self.evaluate()
          self._write_validation(writer, validation, step)
          self._best.offer(validation, step)
    progress.close()
    writer.flush()
    if not chief:
      shutil.rmtree(self._writer_dir, ignore_errors=True)
    if stopped:
      cause = stop.description if stop.requested else "a stop request on another worker"
      print(f"Stopped by {cause} at step {step}; checkpoint saved (the same command goes on "
            "from it).", file=sys.stderr)
    return TrainResult(step=step, losses=last or window.means(), interrupted=stopped,
                       stop_signal=stop.signal_number if stopped else 0, validation=validation)


class _Window:
  """Sums of the logged values since the last summary, for window means and speed; a value
  absent from some steps (a loss a task's phase does not compute) is the mean of the others."""

  def __init__(self):
    self._sums: collections.Counter = collections.Counter()
    self._counts: collections.Counter = collections.Counter()
    self._steps = 0
    self._start = time.monotonic()

  def add(self, values: dict[str, float]) -> None:
    self._sums.update(values)
    self._counts.update(values.keys())
    self._steps += 1

  def means(self) -> dict[str, float]:
    return {name: total / self._counts[name] for name, total in self._sums.items()}

  def steps_per_second(self) -> float:
    return self._steps / max(time.monotonic() - self._start, 1e-9)


class _BestCheckpoint:
  """Keeps, beside the latest checkpoints, the one with the best value of a validation metric
  (`--keep_best`): MODEL_DIR/best/ckpt-STEP and best.json {metric, value, step}. Accuracies are
  best when highest, losses when lowest."""

  def __init__(self, checkpoint: tf.train.Checkpoint, writer_dir: str, metric: str, chief: bool):
    self._metric = metric
    self._directory = os.path.join(writer_dir, BEST_DIR)
    self._manager = (tf.train.CheckpointManager(checkpoint, self._directory, max_to_keep=1)
                     if metric else None)
    self._chief = chief
    record = os.path.join(self._directory, BEST_RECORD)
    payload = files.read_json_or_none(record) if metric else None
    self._value = payload.get("value") if payload is not None else None

  def _better(self, value: float) -> bool:
    if self._value is None:
      return True
    return value > self._value if self._metric.endswith("accuracy") else value < self._value

  def offer(self, values: dict[str, float], step: int) -> None:
    if self._manager is None:
      return
    if self._metric not in values:
      raise TrainingError(f"--keep_best={self._metric} is not one of the validation figures "
                          f"({', '.join(sorted(values))}); pass one of them.")
    value = values[self._metric]
    if not math.isfinite(value) or not self._better(value):
      return
    self._value = value
    self._manager.save(checkpoint_number=step)
    if self._chief:
      files.write_json(os.path.join(self._directory, BEST_RECORD),
                       {"metric": self._metric, "value": value, "step": step})

