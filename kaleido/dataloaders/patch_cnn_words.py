"""Input of the patch CNN's word pre-training: product crops (as the L1 patch) and the bag of
words of their texts."""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from kaleido.patches import cutting
from kaleido.records import manifest as manifest_lib
from kaleido.records import schema
from kaleido.utils import tracing


def bag_of_words(token_ids: tf.Tensor, vocab_size: int, excluded_ids: Sequence[int]
                 ) -> tf.Tensor:
  """(L,) token ids -> (vocab_size,) float32: 1/n on each of the text's n distinct words
  (special tokens excluded), a distribution to predict with softmax cross-entropy."""
  excluded = tf.reduce_any(token_ids[:, None] == tf.constant(list(excluded_ids),
                                                             token_ids.dtype)[None, :], axis=1)
  counts = tf.reduce_sum(tf.one_hot(tf.boolean_mask(token_ids, ~excluded), vocab_size), axis=0)
  present = tf.ensure_shape(tf.minimum(counts, 1.0), [vocab_size])
  return present / tf.maximum(tf.reduce_sum(present), 1.0)


def word_examples(folder: str, vocab_size: int, excluded_ids: Sequence[int]
                  ) -> tf.data.Dataset:
  """One pass, in file order, of {patches: (P, P, 3) uint8 L1 patch, targets: (V,)} per
  example of the prepared `folder`."""
  manifest = manifest_lib.load(folder)

  def example(serialized):
    parsed = schema.parse(serialized)
    l1_patch = cutting.square_crop(tf.io.decode_jpeg(parsed["crop_jpeg"], channels=3),
                                   manifest.patch_size)
    return {"patches": l1_patch,
            "targets": bag_of_words(tf.cast(parsed["token_ids"], tf.int32), vocab_size,
                                    excluded_ids)}

  return tf.data.TFRecordDataset(manifest.shard_paths(folder)).map(
      tracing.plain(example), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def word_dataset(folder: str, batch_size: int, vocab_size: int, excluded_ids: Sequence[int],
                 seed: int | None) -> tf.data.Dataset:
  """Endless shuffled batches of `word_examples`: {patches: (B, P, P, 3), targets: (B, V)}."""
  return (word_examples(folder, vocab_size, excluded_ids).repeat().shuffle(2048, seed=seed)
          .batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE))
