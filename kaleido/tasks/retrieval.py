"""Image-text retrieval fine-tuning (paper section 4.2): the ITM head, with negatives from the
same subcategory, on product names (titles) by default. Scores are the matched-class probability
of the ITM head."""

from __future__ import annotations

import tensorflow as tf

from kaleido.model import losses as losses_lib
from kaleido.pretraining import transforms
from kaleido.tasks import finetune

IMAGE_SIDE = ("patches", "patch_boxes")
MATCHED = 1  # the ITM class of a matched pair


def matched_probability(itm_logits: tf.Tensor) -> tf.Tensor:
  """(B, 2) ITM logits -> (B,) probability that text and image belong together."""
  return tf.nn.softmax(tf.cast(itm_logits, tf.float32), axis=-1)[:, MATCHED]


class RetrievalTask(finetune.FinetuneTask):
  """ITM cross-entropy; `negative_fraction` of each batch is paired with the image of another
  product of the same subcategory (another subcategory when the batch has none)."""

  loss_name = "itm"

  def model_outputs(self, model_inputs, parts):
    pooled = self.encode(model_inputs, parts)["pooled_output"]
    return {"itm_logits": parts.heads.itm(pooled)}

  def dataset(self, batch_size, seed, input_context):
    fraction = self.finetune.negative_fraction

    def with_negatives(batch, batch_seed):
      batch = transforms.negative_pairs(batch, fraction, True, IMAGE_SIDE, batch_seed)
      return {key: batch[key] for key in finetune.ENCODER_KEYS + ("itm_label",)}

    batches = self.seeded(self.examples(batch_size, seed, input_context),
                          None if seed is None else seed + 1, input_context)
    return batches.map(with_negatives, num_parallel_calls=tf.data.AUTOTUNE).prefetch(
        tf.data.AUTOTUNE)

  def terms(self, batch, outputs):
    labels = batch["itm_label"]
    return losses_lib.classification_terms(labels, outputs["itm_logits"],
                                           tf.ones_like(labels, tf.float32))
