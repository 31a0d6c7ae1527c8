"""The seven pre-training losses (paper Eq. 1-8) and accuracies, exact under tf.distribute.

Every loss is a ratio of two sums over the batch, a `Term` (numerator, denominator):
- amlm: cross-entropy over the real predictions (masked_lm_weights) of matched pairs;
- itm: cross-entropy over all examples;
- rr, jps, cp: cross-entropy over matched pairs (itm_label == 1);
- g2cm, b2cm: KL(softmax(target) || softmax(prediction)) over the feature axis, over the masked
  patches of matched pairs;
- itc (beyond the paper, off by default): the symmetric InfoNCE loss of each matched pair's text
  and image embeddings against those of every matched pair of the global batch (gathered across
  replicas), other images of the same product left out; see `contrastive_examples`.
total = sum of PretrainingConfig.weight(name) * loss. A disabled task is not computed: its loss is
reported as 0 (its weight is 0 too). An empty denominator (e.g. no matched pair) gives 0.

Single device: `pretraining_losses`. Under a tf.distribute strategy (e.g. MirroredStrategy),
inside `strategy.run` call `replica_losses`: it divides each replica's numerator by the
denominator summed over all replicas, so every returned value is this replica's share and the SUM
over replicas is the loss of the global batch. Minimise the replica's "total" as is (no division
by the number of replicas: the optimizer sums replica gradients) and report
`strategy.reduce(SUM, value, axis=None)`; `replica_metrics` does the same for the accuracies.
No global batch size is needed: the counts are summed across replicas.
"""

from __future__ import annotations

import tensorflow as tf

from kaleido import config as config_lib

Term = tuple[tf.Tensor, tf.Tensor]  # (numerator, denominator), float32 scalars

# Classification tasks: (label key, logits key, accuracy name).
CLASSIFIERS = {
    "amlm": ("masked_lm_ids", "mlm_logits", "mlm_accuracy"),
    "itm": ("itm_label", "itm_logits", "itm_accuracy"),
    "rr": ("rr_label", "rr_logits", "rr_accuracy"),
    "jps": ("jps_label", "jps_logits", "jps_accuracy"),
    "cp": ("cp_label", "cp_logits", "cp_accuracy"),
}
FEATURE_TASKS = ("g2cm", "b2cm")
CONTRASTIVE_ACCURACY = "itc_accuracy"  # share of ITC directions that rank the own pair first  # outputs {name}_predictions and {name}_targets


def _weights(batch: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
  """Which predictions of every task count: 1/0 weights broadcastable to its predictions."""
  matched = tf.cast(tf.equal(batch["itm_label"], 1), tf.float32)
  weights = {"itm": tf.ones_like(matched), "rr": matched, "jps": matched, "itc": matched,
             "cp": matched * tf.cast(batch["cp_weight"], tf.float32)}
  weights["amlm"] = tf.cast(batch["masked_lm_weights"], tf.float32) * matched[:, tf.newaxis]
  for name in FEATURE_TASKS:
    weights[name] = matched[:, tf.newaxis]
  return weights


def weighted_term(values: tf.Tensor, weights: tf.Tensor) -> Term:
  """(sum of weighted values, sum of weights), the weights broadcast to the values."""
  weights = tf.broadcast_to(weights, tf.shape(values))
  return tf.reduce_sum(values * weights), tf.reduce_sum(weights)


def cross_entropy(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
  """Per-prediction softmax cross-entropy, float32."""
  return tf.nn.sparse_softmax_cross_entropy_with_logits(labels, tf.cast(logits, tf.float32))


def classification_terms(labels: tf.Tensor, logits: tf.Tensor,
                         weights: tf.Tensor) -> tuple[Term, Term]:
  """(cross-entropy term, correct-prediction term) of weighted predictions."""
  predicted = tf.argmax(logits, axis=-1, output_type=tf.int32)
  correct = tf.cast(tf.equal(predicted, labels), tf.float32)
  return (weighted_term(cross_entropy(labels, logits), weights),
          weighted_term(correct, weights))


def kl_divergence(targets: tf.Tensor, predictions: tf.Tensor) -> tf.Tensor:
  """KL(softmax(targets) || softmax(predictions)) over the last axis, float32."""
  log_p = tf.nn.log_softmax(tf.cast(targets, tf.float32))
  log_q = tf.nn.log_softmax(tf.cast(predictions, tf.float32))
  return tf.reduce_sum(tf.exp(log_p) * (log_p - log_q), axis=-1)


def _per_prediction_loss(name: str, batch: dict[str, tf.Tensor],
                         outputs: dict[str, tf.Tensor]) -> tf.Tensor:
  if name in FEATURE_TASKS:
    return kl_divergence(outputs[f"{name}_targets"], outputs[f"{name}_predictions"])
  label, logits, _ = CLASSIFIERS[name]
  return cross_entropy(batch[label], outputs[logits])


def contrastive_examples(batch: dict[str, tf.Tensor],
                         outputs: dict[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
  """(B,) ITC loss and (B,) share of its two directions ranked first, per example of this
  replica; call in a replica context (also the default one).

  Text i is scored against the images of the global batch (image i against its texts) by
  itc_logit_scale times the cosine similarity; the candidates are the matched pairs of the
  global batch except other pairs of the same product (product_key), plus the example's own
  pair; the loss is the mean of the two directions' cross-entropies. Rows of negative pairs
  get values too; the loss terms weigh them by 0.
  """
  context = tf.distribute.get_replica_context()
  matched = tf.cast(tf.equal(batch["itm_label"], 1), tf.float32)
  size = tf.shape(matched)[0]
  keys = context.all_gather({"text": outputs["itc_text"], "image": outputs["itc_image"]}, axis=0)
  others = context.all_gather({"matched": matched, "product": batch["product_key"],
                               "size": size[tf.newaxis]}, axis=0)
  labels = tf.reduce_sum(others["size"][:context.replica_id_in_sync_group]) + tf.range(size)
  own = tf.equal(tf.range(tf.shape(others["matched"])[0])[tf.newaxis], labels[:, tf.newaxis])
  same_product = tf.equal(batch["product_key"][:, tf.newaxis], others["product"][tf.newaxis])
  candidate = own | ((others["matched"][tf.newaxis] > 0) & ~same_product)
  scale = tf.cast(outputs["itc_logit_scale"], tf.float32)

  def direction(queries: tf.Tensor, candidates: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    logits = scale * tf.matmul(tf.cast(queries, tf.float32), tf.cast(candidates, tf.float32),
                               transpose_b=True)
    logits = tf.where(candidate, logits, tf.float32.min)
    first = tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), labels)
    return cross_entropy(labels, logits), tf.cast(first, tf.float32)

  text_loss, text_first = direction(outputs["itc_text"], keys["image"])
  image_loss, image_first = direction(outputs["itc_image"], keys["text"])
  return (text_loss + image_loss) / 2, (text_first + image_first) / 2


def loss_terms(batch: dict[str, tf.Tensor], outputs: dict[str, tf.Tensor],
               task_config: config_lib.PretrainingConfig, itm: Term | None = None,
               matching_only: bool = False) -> dict[str, Term]:
  """(numerator, denominator) of every enabled task's loss on this batch (or replica), with
  `matching_only` of the enabled MATCHING_LOSSES alone; `itm` replaces ITM's term (ITM scored
  on pairs other than the batch's, e.g. in-step groups)."""
  weights = _weights(batch)
  names = config_lib.MATCHING_LOSSES if matching_only else config_lib.PAPER_LOSSES
  terms = {name: (itm if name == "itm" and itm is not None else
                  weighted_term(_per_prediction_loss(name, batch, outputs), weights[name]))
           for name in config_lib.PAPER_LOSSES if name in names and task_config.is_enabled(name)}
  if task_config.is_enabled("itc"):
    terms["itc"] = weighted_term(contrastive_examples(batch, outputs)[0], weights["itc"])
  return terms


def _with_total(losses: dict[str, tf.Tensor], task_config: config_lib.PretrainingConfig,
                matching_only: bool = False) -> dict[str, tf.Tensor]:
  """`losses` with every name of ALL_LOSSES (with `matching_only`, of MATCHING_LOSSES) and
  their weighted sum as "total"."""
  losses = {name: losses.get(name, tf.constant(0.0)) for name in config_lib.ALL_LOSSES}
  weighted = {name: task_config.weight(name) * loss for name, loss in losses.items()}
  matching = tf.add_n([weighted[name] for name in config_lib.MATCHING_LOSSES])
  if matching_only:
    return {**{name: losses[name] for name in config_lib.MATCHING_LOSSES}, "total": matching}
  others = tf.add_n([loss for name, loss in weighted.items()
                     if name not in config_lib.MATCHING_LOSSES])
  losses["total"] = matching + others
  return losses


def _ratios(terms: dict[str, Term]) -> dict[str, tf.Tensor]:
  return {name: tf.math.divide_no_nan(numerator, denominator)
          for name, (numerator, denominator) in terms.items()}


def replica_shares(terms: dict[str, Term]) -> dict[str, tf.Tensor]:
  """Numerators over the denominators summed across replicas (one all-reduce); call in a replica
  context. The sum over replicas of each share is the ratio of the global batch."""
  denominators = tf.distribute.get_replica_context().all_reduce(
      tf.distribute.ReduceOp.SUM, {name: denominator for name, (_, denominator) in terms.items()})
  return _ratios({name: (numerator, denominators[name])
                  for name, (numerator, _) in terms.items()})


def pretraining_losses(batch: dict[str, tf.Tensor], outputs: dict[str, tf.Tensor],
                       task_config: config_lib.PretrainingConfig) -> dict[str, tf.Tensor]:
  """{amlm, itm, rr, jps, cp, g2cm, b2cm, total} float32 scalars: the means over this batch."""
  return _with_total(_ratios(loss_terms(batch, outputs, task_config)), task_config)


def replica_losses(batch: dict[str, tf.Tensor], outputs: dict[str, tf.Tensor],
                   task_config: config_lib.PretrainingConfig, itm: Term | None = None,
                   matching_only: bool = False) -> dict[str, tf.Tensor]:
  """This replica's share of the global-batch losses (same keys); call in a replica context.

  Summing any value over replicas gives the mean over the global batch; with one replica it
  equals `pretraining_losses`. `itm` as in `loss_terms`; with `matching_only` (outputs of a
  matching-only pass), the ITM and ITC losses alone and "total" their weighted sum.
  """
  return _with_total(replica_shares(loss_terms(batch, outputs, task_config, itm, matching_only)),
                     task_config, matching_only)


def metric_terms(batch: dict[str, tf.Tensor], outputs: dict[str, tf.Tensor],
                 itm: Term | None = None, matching_only: bool = False) -> dict[str, Term]:
  """(correct, count) of the itm/mlm/rr/jps/cp (and itc) accuracies, counted as their losses
  are (with `matching_only`, of ITM and ITC alone); `itm` replaces ITM's (correct, count)."""
  weights = _weights(batch)
  terms = {}
  for name, (label, logits, accuracy) in CLASSIFIERS.items():
    if matching_only and name not in config_lib.MATCHING_LOSSES:
      continue
    if name == "itm" and itm is not None:
      terms[accuracy] = itm
      continue
    predicted = tf.argmax(outputs[logits], axis=-1, output_type=tf.int32)
    correct = tf.cast(tf.equal(predicted, batch[label]), tf.float32)
    terms[accuracy] = weighted_term(correct, weights[name])
  if "itc_text" in outputs:
    terms[CONTRASTIVE_ACCURACY] = weighted_term(contrastive_examples(batch, outputs)[1],
                                                weights["itc"])
  return terms


def pretraining_metrics(batch: dict[str, tf.Tensor],
                        outputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
  """{itm,mlm,rr,jps,cp}_accuracy (and itc_accuracy with ITC) on this batch, float32 scalars."""
  return _ratios(metric_terms(batch, outputs))


def replica_metrics(batch: dict[str, tf.Tensor], outputs: dict[str, tf.Tensor],
                    itm: Term | None = None, matching_only: bool = False) -> dict[str, tf.Tensor]:
  """This replica's share of the global-batch accuracies; sum over replicas as the losses."""
  return replica_shares(metric_terms(batch, outputs, itm, matching_only))
