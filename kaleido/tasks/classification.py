"""Category and subcategory recognition (paper section 4.2): a dense layer on the pooled [CLS]."""

from __future__ import annotations

import tensorflow as tf
import tf_keras

from kaleido.model import embeddings as embeddings_lib
from kaleido.model import losses as losses_lib
from kaleido.tasks import finetune

LABEL_KEYS = {"category": "category_id", "subcategory": "subcategory_id"}


class ClassificationTask(finetune.FinetuneTask):
  """Cross-entropy over `num_classes` labels; examples with an unknown label (< 0) do not count."""

  @property
  def label_key(self) -> str:
    return LABEL_KEYS[self.finetune.task]

  def model_outputs(self, model_inputs, parts):
    if self.finetune.num_classes < 2:
      raise ValueError(f"num_classes={self.finetune.num_classes}: a classifier needs >= 2.")
    pooled = self.encode(model_inputs, parts)["pooled_output"]
    pooled = tf_keras.layers.Dropout(self.finetune.classifier_dropout, name="classifier_dropout")(
        pooled)
    logits = tf_keras.layers.Dense(
        self.finetune.num_classes, dtype=tf.float32, name="classifier",
        kernel_initializer=embeddings_lib.initializer(self.config.model.initializer_range))(pooled)
    return {"logits": logits}

  def dataset(self, batch_size, seed, input_context):
    label_key = self.label_key
    batches = self.examples(batch_size, seed, input_context).map(
        lambda batch: {**{key: batch[key] for key in finetune.ENCODER_KEYS},
                       "label": batch[label_key]}, num_parallel_calls=tf.data.AUTOTUNE)
    return batches.prefetch(tf.data.AUTOTUNE)

  def terms(self, batch, outputs):
    known = tf.cast(batch["label"] >= 0, tf.float32)
    return losses_lib.classification_terms(tf.maximum(batch["label"], 0), outputs["logits"],
                                           known)
