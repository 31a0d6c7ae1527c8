"""Image-text retrieval fine-tuning (paper section 4.2): the ITM head, with negatives from the
same subcategory, on product names (titles) by default."""

from __future__ import annotations

import tensorflow as tf

from kaleido.dataloaders import finetuning
from kaleido.model import losses as losses_lib
from kaleido.tasks import finetune


class RetrievalTask(finetune.FinetuneTask):
  """ITM cross-entropy; `negative_fraction` of each batch is paired with the image of another
  product of the same subcategory (another subcategory when the batch has none). With an
  `itc_weight`, plus that weight times the contrastive loss of the matched pairs against the
  global batch (losses.contrastive_examples)."""

  loss_name = "itm"

  @property
  def _itc_weight(self) -> float:
    return self.finetune.itc_weight

  @property
  def reported(self):
    extra = {"itc", losses_lib.CONTRASTIVE_ACCURACY} if self._itc_weight else set()
    return super().reported | extra

  def _contrastive_terms(self, batch, outputs):
    loss, first = losses_lib.contrastive_examples(batch, outputs)
    matched = tf.cast(tf.equal(batch["itm_label"], 1), tf.float32)
    return (losses_lib.weighted_term(loss, matched), losses_lib.weighted_term(first, matched))

  def replica_losses(self, batch, outputs):
    shares = super().replica_losses(batch, outputs)
    if self._itc_weight:
      shares["itc"] = losses_lib.replica_shares(
          {"itc": self._contrastive_terms(batch, outputs)[0]})["itc"]
      shares["total"] = shares["total"] + self._itc_weight * shares["itc"]
    return shares

  def replica_metrics(self, batch, outputs):
    metrics = super().replica_metrics(batch, outputs)
    if self._itc_weight:
      metrics.update(losses_lib.replica_shares(
          {losses_lib.CONTRASTIVE_ACCURACY: self._contrastive_terms(batch, outputs)[1]}))
    return metrics

  def dataset(self, batch_size, seed, input_context, training=True):
    return finetuning.retrieval_dataset(self.data_folder(training), batch_size, self.finetune,
                                        seed, input_context, self.config.task.name_as_text,
                                        self.feature_cache(training))

  def terms(self, batch, outputs):
    labels = batch["itm_label"]
    return losses_lib.classification_terms(labels, outputs["itm_logits"],
                                           tf.ones_like(labels, tf.float32))
