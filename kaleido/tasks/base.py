"""What the trainer needs from a training task."""

from __future__ import annotations

import abc

import tensorflow as tf
import tf_keras

from kaleido import config as config_lib
from kaleido.masking import text_masking


class Task(abc.ABC):
  """A model, its data and its losses. Losses and metrics are replica shares (see
  kaleido.model.losses): summed over replicas they are the means over the global batch."""

  def __init__(self, config: config_lib.KaleidoConfig, special_ids: text_masking.SpecialIds):
    self.config = config
    self.special_ids = special_ids

  @property
  @abc.abstractmethod
  def reported(self) -> frozenset[str]:
    """Names of the losses and metrics written to TensorBoard (a "total" loss is always one)."""

  @abc.abstractmethod
  def build_model(self) -> tf_keras.Model:
    """The model, built inside the strategy scope by the caller."""

  def initialize(self, model: tf_keras.Model) -> str:
    """Loads starting weights into a freshly built `model` (not on resume); returns a note.

    By default the BERT checkpoint `config.train.bert_init`, if any, into the text side and the
    encoder (see kaleido.checkpoints.bert_init).
    """
    return self.initialize_from_bert(model)

  def initialize_from_bert(self, model: tf_keras.Model) -> str:
    """Loads `config.train.bert_init` into `model` (one with "encoder" and "heads" layers)."""
    if not self.config.train.bert_init:
      return ""
    from kaleido.checkpoints import bert_init  # pylint: disable=g-import-not-at-top
    from kaleido.checkpoints import readers  # pylint: disable=g-import-not-at-top
    checkpoint = readers.read_bert_checkpoint(self.config.train.bert_init)
    return bert_init.initialize_from_bert(model, checkpoint).summary()

  @abc.abstractmethod
  def dataset(self, batch_size: int, seed: int | None,
              input_context: tf.distribute.InputContext | None) -> tf.data.Dataset:
    """Endless shuffled training batches (batch size as in `pretraining_dataset`)."""

  @abc.abstractmethod
  def replica_losses(self, batch: dict[str, tf.Tensor],
                     outputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """This replica's share of every loss, with "total" the one minimised."""

  @abc.abstractmethod
  def replica_metrics(self, batch: dict[str, tf.Tensor],
                      outputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """This replica's share of every accuracy."""
