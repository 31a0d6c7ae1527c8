"""Image-text retrieval fine-tuning (paper section 4.2): the ITM head, with negatives from the
same subcategory, on product names (titles) by default; or with groups of negatives made in the
training step (kaleido.tasks.itm_groups) and a binary or listwise loss."""

from __future__ import annotations

import tensorflow as tf

from kaleido import config as config_lib
from kaleido.dataloaders import finetuning
from kaleido.model import heads as heads_lib
from kaleido.model import losses as losses_lib
from kaleido.tasks import finetune
from kaleido.tasks import itm_groups
from kaleido.tasks import pair_queue


class RetrievalTask(finetune.FinetuneTask):
  """ITM cross-entropy; `negative_fraction` of each batch is paired with the image of another
  product of the same subcategory (another subcategory when the batch has none). With an
  `itc_weight`, plus that weight times the contrastive loss of the matched pairs against the
  global batch (losses.contrastive_examples)."""

  loss_name = "itm"
  _queue: pair_queue.PairQueue | None = None  # built with the model

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

  @property
  def _group_size(self) -> int:
    """K, the negatives per query made in the step (0: the input pipeline's pairs)."""
    return self.finetune.negatives_per_positive

  def build_model(self):
    """The matcher, and with a `negative_queue` the queue of earlier pairs (not checkpointed)."""
    model = super().build_model()
    self._queue = (pair_queue.PairQueue(self.finetune.negative_queue, self.model_config)
                   if self.finetune.negative_queue else None)
    return model

  def forward(self, model, batch, training, phase=None):
    """Input pairs as they are, or each matched pair with K negative images for its text and K
    negative texts for its image drawn from the global batch (in training also from the
    `negative_queue`'s earlier pairs), all in one joint pass (itm_groups.group_outputs)."""
    del phase  # one phase
    k = self._group_size
    if not k:
      return super().forward(model, batch, training)
    inputs = model.pair_features(self.model_inputs(model, batch))
    outputs = {}
    if model.contrastive is not None:
      outputs = model.contrastive_outputs(inputs, training=training)
    pool = itm_groups.global_pool(
        inputs, batch, {key: outputs[key] for key in ("itc_text", "itc_image") if key in outputs})
    if training and self._queue is not None:
      widened = self._queue.widen(pool)
      self._queue.push(pool)
      pool = widened
    margins = lambda pairs: heads_lib.itm_margin(model.itm_logits(pairs, training=False))
    groups = itm_groups.group_outputs(
        pool, k, lambda pool, side, seed: self._negative_scores(pool, outputs, side, seed,
                                                                margins),
        lambda pairs: model.itm_logits(pairs, training=training), self.finetune.group_every)
    return {**outputs, **groups}

  def _negative_scores(self, pool, outputs, side: str, seed, margins):
    """(Q, G) scores of the pool's `side` (its images for a text query, its texts for an image
    query) for its Q queries, whose top K are the drawn negatives (`margins`: the
    cross-encoder's margin of pairs, for the margin_shortlist draw)."""
    if not self.finetune.mined_negatives:
      return itm_groups.random_scores(pool, self.finetune.negative_same_subcategory, seed)
    candidates = pool.embeddings[f"itc_{side}"]
    queries = tf.gather(pool.embeddings["itc_text" if side == "image" else "itc_image"],
                        pool.own)
    similarity = tf.cast(tf.stop_gradient(outputs["itc_logit_scale"]), tf.float32) * tf.matmul(
        queries, candidates, transpose_b=True)
    if self.finetune.margin_shortlist:
      return itm_groups.margin_scores(pool, similarity, side, self.finetune.margin_shortlist,
                                      margins, seed)
    return itm_groups.mined_scores(pool, similarity, seed)

  def dataset(self, batch_size, seed, input_context, training=True):
    return finetuning.retrieval_dataset(self.data_folder(training), batch_size, self.finetune,
                                        seed, input_context, self.config.task.name_as_text,
                                        self.feature_cache(training),
                                        config_lib.trims_text(self.config))

  def terms(self, batch, outputs):
    k = self._group_size
    if not k:
      labels = batch["itm_label"]
      return losses_lib.classification_terms(labels, outputs["itm_logits"],
                                             tf.ones_like(labels, tf.float32))
    loss, correct, weights = itm_groups.group_terms(outputs, self.finetune.itm_loss == "listwise",
                                                    k)
    return losses_lib.weighted_term(loss, weights), losses_lib.weighted_term(correct, weights)
