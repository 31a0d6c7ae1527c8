"""What the downstream tasks (paper section 4.2) share: the backbone with the task's head, a
pre-training checkpoint to start from, and one loss with its accuracy."""

from __future__ import annotations

import abc

import tensorflow as tf
import tf_keras

from kaleido.model import kaleido_bert
from kaleido.model import losses as losses_lib
from kaleido.tasks import kaleido_task


class FinetuneTask(kaleido_task.KaleidoTask):
  """A downstream task on the prepared folder `config.data.train_data`."""

  @property
  def finetune(self):
    return self.config.task.finetune

  def build_model(self) -> tf_keras.Model:
    return kaleido_bert.build_finetune_model(self.config.task, self.model_config)

  @property
  def loss_name(self) -> str:
    """The name of the task's loss in TensorBoard; its accuracy is `<loss_name>_accuracy`."""
    return self.config.task.name

  @property
  def reported(self) -> frozenset[str]:
    return frozenset({"total", self.loss_name, f"{self.loss_name}_accuracy"})

  @abc.abstractmethod
  def terms(self, batch: dict[str, tf.Tensor],
            outputs: dict[str, tf.Tensor]) -> tuple[losses_lib.Term, losses_lib.Term]:
    """(loss term, correct-prediction term) of this replica's batch."""

  def replica_losses(self, batch, outputs):
    shares = losses_lib.replica_shares({self.loss_name: self.terms(batch, outputs)[0]})
    return {**shares, "total": shares[self.loss_name]}

  def replica_metrics(self, batch, outputs):
    return losses_lib.replica_shares(
        {f"{self.loss_name}_accuracy": self.terms(batch, outputs)[1]})
