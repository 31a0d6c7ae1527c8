"""AMLM text corruption (paper section 3.6): 80% [MASK], 10% random token, 10% unchanged."""

from __future__ import annotations

import tensorflow as tf

from kaleido.text import vocab as vocab_lib

MASK_PROBABILITY = 0.8
RANDOM_TOKEN_PROBABILITY = 0.1


def maskable_tokens(input_word_ids: tf.Tensor, input_mask: tf.Tensor,
                    special_ids: vocab_lib.SpecialIds) -> tf.Tensor:
  """(L,) bool: real text tokens other than [CLS], [SEP] and [PAD]."""
  special = ((input_word_ids == special_ids.cls_id) | (input_word_ids == special_ids.sep_id) |
             (input_word_ids == special_ids.pad_id))
  return (input_mask > 0) & ~special


def mask_tokens(input_word_ids: tf.Tensor, positions: tf.Tensor, num_positions: tf.Tensor,
                special_ids: vocab_lib.SpecialIds, seed: tf.Tensor) -> dict[str, tf.Tensor]:
  """Corrupts the first `num_positions` of `positions` (max_predictions,) in `input_word_ids` (L,).

  Returns the corrupted input_word_ids and masked_lm_positions/ids/weights (max_predictions,),
  zero where padding.
  """
  real = tf.range(positions.shape[0]) < num_positions
  original = tf.gather(input_word_ids, positions)
  draw_seed, token_seed = tf.unstack(tf.random.split(seed, 2))
  draw = tf.random.stateless_uniform(positions.shape, draw_seed)
  random_ids = tf.random.stateless_uniform(positions.shape, token_seed,
                                           maxval=special_ids.vocab_size, dtype=tf.int32)
  replaced = tf.where(draw < MASK_PROBABILITY, special_ids.mask_id,
                      tf.where(draw < MASK_PROBABILITY + RANDOM_TOKEN_PROBABILITY, random_ids,
                               original))
  corrupted = tf.tensor_scatter_nd_update(input_word_ids, positions[:num_positions, None],
                                          replaced[:num_positions])
  return {
      "input_word_ids": corrupted,
      "masked_lm_positions": tf.where(real, positions, 0),
      "masked_lm_ids": tf.where(real, original, 0),
      "masked_lm_weights": tf.cast(real, tf.float32),
  }
