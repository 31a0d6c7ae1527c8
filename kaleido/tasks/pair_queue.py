"""A queue of earlier steps' matched pairs that widens the pool ITM negatives are drawn from.

Retrieval fine-tuning draws each query's K negatives from the global batch (kaleido.tasks.
itm_groups). A whole gallery's ITC shortlist is harder than what a batch of 32 offers, and a pool
four times larger moved the cross-encoder towards it (BUILD_NOTES, issue #33). The queue gives the
larger pool at no extra encoder cost, in the manner of MoCo's queue of keys: the last N matched
pairs of earlier global batches (text, patch features, product, subcategory and their ITC
embeddings from the step they were seen in) join the pool as candidates, never as queries.

Every replica keeps its own copy, written with the same gathered global batch, so all copies stay
alike without communication. The queue is not checkpointed: a resumed run refills it in N / G
steps. Rows whose text is longer than the current batch's (text cut to each batch's longest,
`DataConfig.trim_text`) sit that step out, so no candidate loses its [SEP].
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from kaleido import config as config_lib
from kaleido.patches import kaleido_grid
from kaleido.tasks import itm_groups

_EMBEDDINGS = ("itc_text", "itc_image")


class PairQueue:
  """The last `size` matched pairs of earlier global batches, newest first."""

  def __init__(self, size: int, model: config_lib.KaleidoBertConfig):
    """Creates the queue's variables (call inside the strategy's scope), empty."""
    shapes = {"input_word_ids": ([model.max_seq_length], tf.int32),
              "input_mask": ([model.max_seq_length], tf.int32),
              "patch_features": ([model.num_patches, model.feature_size], tf.float32),
              "patch_boxes": ([model.num_patches, kaleido_grid.BOX_DIM], tf.float32),
              "product_key": ([], tf.int64), "subcategory_id": ([], tf.int32),
              "filled": ([], tf.bool),
              **{key: ([model.contrastive_dim], tf.float32) for key in _EMBEDDINGS}}
    self.size = size
    self._variables = {
        key: tf.Variable(tf.zeros([size, *shape], dtype), trainable=False, name=f"queue_{key}",
                         synchronization=tf.VariableSynchronization.ON_READ,
                         aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        for key, (shape, dtype) in shapes.items()}

  def _read(self, key: str) -> tf.Tensor:
    return tf.convert_to_tensor(self._variables[key])

  def widen(self, pool: itm_groups.Pool) -> itm_groups.Pool:
    """`pool` with the queue's rows after its own (the queries and their rows stay as they are);
    a row is available once filled and when its text fits the pool's text length."""
    text_length = tf.shape(pool.inputs["input_word_ids"])[1]
    queued = {key: self._read(key) for key in self._variables}
    fits = tf.reduce_sum(queued["input_mask"][:, text_length:], axis=1) == 0
    for key in itm_groups.TEXT_KEYS:
      queued[key] = queued[key][:, :text_length]
    joined = lambda ours, theirs: tf.concat([ours, tf.cast(theirs, ours.dtype)], axis=0)
    return dataclasses.replace(
        pool,
        inputs={key: joined(value, queued[key]) for key, value in pool.inputs.items()},
        product_key=joined(pool.product_key, queued["product_key"]),
        subcategory_id=joined(pool.subcategory_id, queued["subcategory_id"]),
        available=joined(pool.available, queued["filled"] & fits),
        embeddings={key: joined(value, queued[key]) for key, value in pool.embeddings.items()})

  def push(self, pool: itm_groups.Pool) -> None:
    """Puts the global batch of `pool` (its first G rows, before any widening) in front and
    drops the oldest G rows."""
    batch = tf.shape(pool.product_key)[0]
    keep = self.size - batch
    text_pad = [[0, 0], [0, self._variables["input_word_ids"].shape[1]
                         - tf.shape(pool.inputs["input_word_ids"])[1]]]
    newest = {**{key: tf.pad(pool.inputs[key], text_pad) for key in itm_groups.TEXT_KEYS},
              **{key: pool.inputs[key] for key in itm_groups.IMAGE_KEYS},
              "product_key": pool.product_key, "subcategory_id": pool.subcategory_id,
              "filled": tf.ones([batch], tf.bool),
              **{key: pool.embeddings[key] for key in _EMBEDDINGS}}
    for key, variable in self._variables.items():
      older = self._read(key)[:keep]
      variable.assign(tf.concat([tf.cast(newest[key], variable.dtype), older], axis=0))
