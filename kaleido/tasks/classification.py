"""Category and subcategory recognition (paper section 4.2): a dense layer on the pooled output."""

from __future__ import annotations

import tensorflow as tf

from kaleido import config as config_lib
from kaleido.dataloaders import finetuning
from kaleido.model import losses as losses_lib
from kaleido.tasks import finetune


class ClassificationTask(finetune.FinetuneTask):
  """Cross-entropy over `num_classes` labels; examples with an unknown label (< 0) do not count."""

  def dataset(self, batch_size, seed, input_context, training=True):
    return finetuning.classification_dataset(self.data_folder(training), batch_size,
                                             self.config.task.name, seed, input_context,
                                             self.feature_cache(training),
                                             config_lib.trims_text(self.config))

  def terms(self, batch, outputs):
    known = tf.cast(batch["label"] >= 0, tf.float32)
    return losses_lib.classification_terms(tf.maximum(batch["label"], 0), outputs["logits"],
                                           known)
