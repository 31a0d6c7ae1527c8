"""Pre-training (paper sections 3.4-3.6, Eq. 8) as a training task."""

from __future__ import annotations

import tensorflow as tf
import tf_keras

from kaleido.model import kaleido_bert
from kaleido.model import losses as losses_lib
from kaleido.pretraining import inputs
from kaleido.tasks import base


class PretrainingTask(base.Task):
  """AMLM, ITM and the five kaleido tasks on the on-the-fly masked pipeline."""

  @property
  def reported(self) -> frozenset[str]:
    task = self.config.task
    accuracies = {accuracy for name, (_, _, accuracy) in losses_lib.CLASSIFIERS.items()
                  if task.is_enabled(name)}
    return frozenset({"total", *task.enabled, *accuracies})

  def build_model(self) -> tf_keras.Model:
    model = self.config.model
    return kaleido_bert.build_pretraining_model(model, self.config.task,
                                                model.backbone_weights or None)

  def dataset(self, batch_size, seed, input_context) -> tf.data.Dataset:
    return inputs.pretraining_dataset(self.config.train.train_data, batch_size, self.config.task,
                                      self.special_ids, seed=seed, input_context=input_context)

  def replica_losses(self, batch, outputs):
    return losses_lib.replica_losses(batch, outputs, self.config.task)

  def replica_metrics(self, batch, outputs):
    return losses_lib.replica_metrics(batch, outputs)
