"""What the one trainer (kaleido.training.trainer) needs from a task, in the manner of
tf-models-official's `base_task.Task`: a model, its data, its losses and metrics, and how it
starts. Pre-training, the four downstream tasks, the alignment generator's captioner, the
UNet foreground net and the patch CNN's word pre-training are all tasks (kaleido.tasks).
"""

from __future__ import annotations

import abc
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras

from kaleido import config as config_lib

LrRules = list[tuple[str, float]]


class Task(abc.ABC):
  """A model, its data and its losses. Losses and metrics are replica shares (see
  kaleido.model.losses): summed over replicas they are the means over the global batch."""

  def __init__(self, config: config_lib.ExperimentConfig):
    self.config = config

  def phase(self, step: int) -> str | None:
    """The phase of the training step that follows `step` finished ones, for a task that trains
    differently in some steps (the trainer traces one step per phase and passes it to
    `forward`); None: the task's one way."""
    del step
    return None

  @property
  @abc.abstractmethod
  def reported(self) -> frozenset[str]:
    """Names of the losses and metrics written to TensorBoard (a "total" loss is always one)."""

  @abc.abstractmethod
  def build_model(self) -> tf_keras.Model:
    """The model with its variables created, built by the trainer inside the strategy scope."""

  def initialize(self, model: tf_keras.Model) -> str:
    """Loads starting weights into a freshly built `model` (not on resume); returns a note."""
    del model
    return ""

  def prepare_inputs(self, model: tf_keras.Model, worker: int = 0) -> None:
    """Work the inputs need once `model` holds its starting weights (the patch feature cache),
    done before the first `dataset` call; `worker` is this process's index in a multi-worker
    run (its share of that work starts there)."""
    del model, worker

  @abc.abstractmethod
  def dataset(self, batch_size: int, seed: int | None,
              input_context: tf.distribute.InputContext | None,
              training: bool = True) -> tf.data.Dataset:
    """Endless shuffled batches of `config.data.train_data` (with `training`) or of
    `config.data.eval_data`: `batch_size` examples per batch without `input_context`, this
    pipeline's share of the global `batch_size` with one. The same seed gives the same batches,
    masks and transforms, so held-out figures are comparable across evaluations."""

  def model_inputs(self, model: tf_keras.Model, batch: dict[str, tf.Tensor]) -> Any:
    """What the model is called with: by default the batch's keys the model declares."""
    return {key: batch[key] for key in model.input_keys}

  def forward(self, model: tf_keras.Model, batch: dict[str, tf.Tensor], training: bool,
              phase: str | None = None) -> Any:
    """The model's outputs on a batch, in the training steps of `phase` and the held-out steps
    (phase None; call in a replica context): by default one call on `model_inputs`."""
    del phase
    return model(self.model_inputs(model, batch), training=training)

  @abc.abstractmethod
  def replica_losses(self, batch: dict[str, tf.Tensor], outputs: Any) -> dict[str, tf.Tensor]:
    """This replica's share of every loss, with "total" the one minimised."""

  @abc.abstractmethod
  def replica_metrics(self, batch: dict[str, tf.Tensor], outputs: Any) -> dict[str, tf.Tensor]:
    """This replica's share of every accuracy."""

  def lr_rules(self) -> LrRules:
    """Learning-rate multipliers by variable name (kaleido.training.optimization)."""
    return []

  def summary_images(self, model: tf_keras.Model,
                     batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Pictures of a training batch (and of what `model` makes of it) for TensorBoard,
    {tag: (N, H, W, 3) uint8}."""
    del model, batch
    return {}

  def data_folder(self, training: bool) -> str:
    """The folder `dataset` reads."""
    return self.config.data.train_data if training else self.config.data.eval_data
