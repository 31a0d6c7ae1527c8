"""ITM candidate groups made inside the training step (retrieval fine-tuning, pre-training).

For each matched pair of the batch: K negative images for its text and K negative texts for its
image, drawn from the global batch (every replica's examples, gathered) among other products:
- at random, the chosen share of queries from their own subcategory first
  (`FinetuneConfig.negative_same_subcategory`), or
- mined: in proportion to the softmax of the ITC similarity (`mined_negatives`, as ALBEF and BLIP
  draw them), so the cross-encoder trains where the first stage is unsure; or, with a
  `margin_shortlist`, in proportion to the softmax of the cross-encoder's own margin among each
  query's ITC shortlist, so it trains where it is unsure itself.
Draws are without replacement (Gumbel top-k) from the global batch's seed, the same draws
whatever the number of replicas. With `every` > 1 only one pair in `every` of each replica's
batch is a query (the pool stays the whole global batch): the group pass costs 1/`every` as much.
All 1 + 2K pairs of every query go through the cross-encoder in one joint pass, in the order: the
Q positives, the Q x K text -> image negatives, the Q x K image -> text negatives.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import tensorflow as tf

from kaleido.model import heads as heads_lib

TEXT_KEYS = ("input_word_ids", "input_mask")
IMAGE_KEYS = ("patch_features", "patch_boxes")
_NONE = -1e9  # the score of a candidate that may not be drawn (the query's own product)


@dataclasses.dataclass(frozen=True)
class Pool:
  """The global batch's pairs, every replica's in replica order, and where this replica's sit."""
  inputs: dict[str, tf.Tensor]  # TEXT_KEYS and IMAGE_KEYS, (G, ...)
  product_key: tf.Tensor  # (G,)
  subcategory_id: tf.Tensor  # (G,)
  own: tf.Tensor  # (B,) rows of this replica's queries: its pairs, or one in `every`
  seed: tf.Tensor  # (2,) the global batch's seed
  available: tf.Tensor  # (G,) bool: rows that may be drawn (all of a global batch's)
  # the rows' ITC embeddings (itc_text, itc_image), when the caller gave them
  embeddings: dict[str, tf.Tensor] = dataclasses.field(default_factory=dict)


def global_pool(inputs: dict[str, tf.Tensor], batch: dict[str, tf.Tensor],
                embeddings: dict[str, tf.Tensor] | None = None) -> Pool:
  """Gathers the pairs of every replica, and their `embeddings` if given (call in a replica
  context, also the default one). The gathered patch features and embeddings carry no gradient:
  each replica's own pairs get theirs through its positives."""
  context = tf.distribute.get_replica_context()
  size = tf.shape(batch["product_key"])[0]
  local = {**{key: inputs[key] for key in TEXT_KEYS + ("patch_boxes",)},
           "patch_features": tf.stop_gradient(inputs["patch_features"]),
           "product_key": batch["product_key"], "subcategory_id": batch["subcategory_id"],
           "pair_seed": batch["pair_seed"], "size": size[tf.newaxis],
           "embeddings": {key: tf.stop_gradient(tf.cast(value, tf.float32))
                          for key, value in (embeddings or {}).items()}}
  gathered = context.all_gather(local, axis=0)
  offset = tf.reduce_sum(gathered.pop("size")[:context.replica_id_in_sync_group])
  product_key, subcategory_id = gathered.pop("product_key"), gathered.pop("subcategory_id")
  seed = gathered.pop("pair_seed")[0]
  gathered_embeddings = gathered.pop("embeddings")
  return Pool(inputs=gathered, product_key=product_key, subcategory_id=subcategory_id,
              own=offset + tf.range(size), seed=seed,
              available=tf.ones(tf.shape(product_key), tf.bool), embeddings=gathered_embeddings)


def _own_rows_of_uniform(pool: Pool, seed: tf.Tensor, **kwargs) -> tf.Tensor:
  """(B, G) rows of a (G, G) uniform draw of the global seed: this replica's queries' rows."""
  total = tf.shape(pool.product_key)[0]
  return tf.gather(tf.random.stateless_uniform([total, total], seed, **kwargs), pool.own)


def random_scores(pool: Pool, same_subcategory: float, seed: tf.Tensor) -> tf.Tensor:
  """(B, G) scores whose top k are k random other products, the share `same_subcategory` of
  queries (drawn at random) taking those of their own subcategory first."""
  score_seed, chooser_seed = tf.unstack(tf.random.split(seed, 2))
  scores = _own_rows_of_uniform(pool, score_seed)
  if same_subcategory > 0:
    own_subcategory = tf.gather(pool.subcategory_id, pool.own)
    same = tf.cast(own_subcategory[:, None] == pool.subcategory_id[None, :], tf.float32)
    chooser = tf.random.stateless_uniform(tf.shape(pool.product_key), chooser_seed)
    chosen = tf.gather(chooser, pool.own) < same_subcategory
    scores += same * tf.cast(chosen, tf.float32)[:, None]
  return scores


def mined_scores(pool: Pool, similarity: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
  """(B, G) logits plus Gumbel noise: their top k are k draws without replacement in proportion
  to softmax(`similarity`) (the ITC logits: scaled cosines)."""
  uniform = _own_rows_of_uniform(pool, seed, minval=1e-20, maxval=1.0)
  return tf.cast(similarity, tf.float32) - tf.math.log(-tf.math.log(uniform))


def margin_scores(pool: Pool, similarity: tf.Tensor, side: str, shortlist: int,
                  margins: Callable[[dict[str, tf.Tensor]], tf.Tensor],
                  seed: tf.Tensor) -> tf.Tensor:
  """(B, G) scores whose top k are k draws, without replacement and in proportion to the softmax
  of the cross-encoder's own margin, among each query's `shortlist` best other products by
  `similarity` (the ITC logits): negatives the cross-encoder confuses, not only those ITC does.
  `margins` scores {text, image} pairs (no gradient is taken through it); `side` is what is drawn
  (its images for a text query, its texts for an image query)."""
  candidates, valid = top_negatives(pool, similarity, shortlist)  # (B, S) pool rows
  size = tf.shape(candidates)[0]
  queries = tf.reshape(tf.tile(pool.own[:, None], [1, shortlist]), [-1])
  flat = tf.reshape(candidates, [-1])
  text_rows, image_rows = (queries, flat) if side == "image" else (flat, queries)
  scored = tf.reshape(tf.cast(tf.stop_gradient(margins(pair_inputs(pool, text_rows, image_rows))),
                              tf.float32), [size, shortlist])
  uniform = tf.random.stateless_uniform(tf.shape(scored), seed, minval=1e-20, maxval=1.0)
  drawn = tf.where(valid > 0, scored - tf.math.log(-tf.math.log(uniform)), _NONE)
  total = tf.shape(pool.product_key)[0]
  rows = tf.stack([tf.repeat(tf.range(size), shortlist), flat], axis=1)
  return tf.tensor_scatter_nd_update(tf.fill([size, total], _NONE), rows, tf.reshape(drawn, [-1]))


def top_negatives(pool: Pool, scores: tf.Tensor, k: int) -> tuple[tf.Tensor, tf.Tensor]:
  """((B, k) pool rows of the k best-scoring other products, (B, k) 1.0 where such a product
  exists): a query's own product (all its pairs) and unavailable rows are never drawn."""
  own_key = tf.gather(pool.product_key, pool.own)
  barred = (own_key[:, None] == pool.product_key[None, :]) | ~pool.available[None, :]
  values, rows = tf.math.top_k(tf.where(barred, _NONE, scores), k)
  return rows, tf.cast(values > _NONE / 2, tf.float32)


def pair_inputs(pool: Pool, text_rows: tf.Tensor, image_rows: tf.Tensor) -> dict[str, tf.Tensor]:
  """The cross-encoder inputs of the pairs (text of pool row text_rows[n], image of
  image_rows[n])."""
  return {**{key: tf.gather(pool.inputs[key], text_rows) for key in TEXT_KEYS},
          **{key: tf.gather(pool.inputs[key], image_rows) for key in IMAGE_KEYS}}


def group_rows(pool: Pool, image_negatives: tf.Tensor,
               text_negatives: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
  """(text rows, image rows) of the B positives, then for each query its K negative images
  (text -> image), then its K negative texts (image -> text): B (1 + 2K) pairs."""
  own = pool.own
  k = tf.shape(image_negatives)[1]
  repeated = tf.reshape(tf.tile(own[:, None], [1, k]), [-1])
  text_rows = tf.concat([own, repeated, tf.reshape(text_negatives, [-1])], axis=0)
  image_rows = tf.concat([own, tf.reshape(image_negatives, [-1]), repeated], axis=0)
  return text_rows, image_rows


def split_margins(margins: tf.Tensor, size: int | tf.Tensor,
                  k: int) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
  """(N,) margins in `group_rows` order -> ((B,) positives, (B, K) text -> image negatives,
  (B, K) image -> text negatives)."""
  positives = margins[:size]
  text_to_image = tf.reshape(margins[size:size + size * k], [size, k])
  image_to_text = tf.reshape(margins[size + size * k:], [size, k])
  return positives, text_to_image, image_to_text


def listwise_losses(positives: tf.Tensor, negatives: tf.Tensor,
                    valid: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
  """((B,) softmax cross-entropy of each positive against its valid negatives' margins, (B,) 1.0
  where the positive ranks first)."""
  negatives = tf.where(valid > 0, tf.cast(negatives, tf.float32), -tf.float32.max)
  positives = tf.cast(positives, tf.float32)
  group = tf.concat([positives[:, None], negatives], axis=1)
  loss = tf.reduce_logsumexp(group, axis=1) - positives
  first = tf.cast(positives > tf.reduce_max(negatives, axis=1), tf.float32)
  return loss, first


# (pool, side drawn, seed) -> (Q, G) scores of the pool's rows for its Q queries (`Pool.own`)
ScoresFn = Callable[[Pool, str, tf.Tensor], tf.Tensor]


def group_outputs(pool: Pool, k: int, scores: ScoresFn,
                  pair_logits: Callable[[dict[str, tf.Tensor]], tf.Tensor],
                  every: int = 1) -> dict[str, tf.Tensor]:
  """The groups of this replica's matched pairs in `pool` (`global_pool`, maybe widened by
  kaleido.tasks.pair_queue), one query in `every`, their negatives drawn from the whole pool by
  `scores` and all scored by `pair_logits` in one joint pass: {itm_logits (Q (1 + 2K), 2) in
  `group_rows` order, itm_group_labels (1 for the Q positives, 0 for the negatives),
  itm_group_weights (1.0, 0.0 where no negative could be drawn)}."""
  pool = dataclasses.replace(pool, own=pool.own[::every])  # the queries
  text_seed, image_seed = tf.unstack(tf.random.split(pool.seed, 2))
  image_scores = scores(pool, "image", image_seed)
  text_scores = scores(pool, "text", text_seed)
  image_negatives, image_valid = top_negatives(pool, image_scores, k)
  text_negatives, text_valid = top_negatives(pool, text_scores, k)
  text_rows, image_rows = group_rows(pool, image_negatives, text_negatives)
  size = tf.shape(pool.own)[0]
  return {"itm_logits": pair_logits(pair_inputs(pool, text_rows, image_rows)),
          "itm_group_labels": tf.concat([tf.ones([size], tf.int32),
                                         tf.zeros([2 * size * k], tf.int32)], axis=0),
          "itm_group_weights": tf.concat([tf.ones([size], tf.float32),
                                          tf.reshape(image_valid, [-1]),
                                          tf.reshape(text_valid, [-1])], axis=0)}


def group_terms(outputs: dict[str, tf.Tensor], listwise: bool, k: int):
  """((Q (1 + 2K),) or (Q,) per-prediction ITM loss, its accuracy, its weights) of
  `group_outputs`: binary cross-entropy and correctness of every pair, or per query the mean over
  its two directions of the listwise loss and of its positive ranking first."""
  logits, weights = outputs["itm_logits"], outputs["itm_group_weights"]
  if not listwise:
    labels = outputs["itm_group_labels"]
    loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels, tf.cast(logits, tf.float32))
    correct = tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), labels),
                      tf.float32)
    return loss, correct, weights
  margins = heads_lib.itm_margin(logits)
  size = tf.shape(margins)[0] // (1 + 2 * k)
  positives, text_to_image, image_to_text = split_margins(margins, size, k)
  _, image_valid, text_valid = split_margins(weights, size, k)
  loss_t, first_t = listwise_losses(positives, text_to_image, image_valid)
  loss_i, first_i = listwise_losses(positives, image_to_text, text_valid)
  return (loss_t + loss_i) / 2, (first_t + first_i) / 2, tf.ones([size], tf.float32)
