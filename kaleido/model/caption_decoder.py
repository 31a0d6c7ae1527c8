"""Autoregressive captions with a key/value cache (greedy and beam search), in TensorFlow ops.

Under the UniLM mask of the autoregressive captioner (kaleido_bert.unilm_attention_mask) the
patches never attend to text, so every layer's patch keys and values are computed once per image,
and each new text position needs only its own query, key and value per layer: one decoding step
costs one position's pass through the encoder instead of the whole sequence's. The encoder's
first `fusion_layer` blocks keep the text from the patches. The same ops run
in Python evaluation (evaluate.py) and inside exported SavedModels.

The step reuses the weights of the encoder's tf-models-official TransformerEncoderBlocks (post-LN,
tf_keras MultiHeadAttention) and so reads their sublayers; `tests/test_caption_decoder.py` holds it
to the full encoder's logits.
"""

from __future__ import annotations

import tensorflow as tf

from kaleido.model import beam_search as beam_search_lib
from kaleido.patches import kaleido_grid

NEG_INF = -1e9


class CachedDecoder(tf.Module):
  """Captions of an autoregressive `KaleidoCaptioner` (kaleido.model.kaleido_bert)."""

  def __init__(self, captioner, cls_id: int, sep_id: int, pad_id: int,
               kaleido_levels=kaleido_grid.LEVELS):
    super().__init__()
    self._encoder = captioner.backbone.encoder
    self._masked_lm = captioner.masked_lm
    self._cls, self._sep, self._pad = cls_id, sep_id, pad_id
    self._visible = tf.constant(kaleido_grid.visible_patches(kaleido_levels), tf.float32)
    self._fusion_layer = self._encoder.get_config()["fusion_layer"]

  @property
  def max_length(self) -> int:
    return self._encoder.get_config()["max_seq_length"]

  def _patch_cache(self, features: tf.Tensor, boxes: tf.Tensor) -> list[tuple[tf.Tensor, ...]]:
    """Per layer, the (B, P, N, D) keys and values of the patches (they see only patches)."""
    states = self._encoder.embeddings.patch_embeddings(features, boxes)
    batch = tf.shape(states)[0]
    visible = tf.tile(self._visible[tf.newaxis, tf.newaxis], [batch, tf.shape(states)[1], 1])
    cache = []
    for block in self._encoder.transformer_layers:
      attention = block._attention_layer  # pylint: disable=protected-access
      cache.append((attention._key_dense(states), attention._value_dense(states)))  # pylint: disable=protected-access
      states = block([states, visible])
    return cache

  def _block_step(self, block, state: tf.Tensor, keys: tf.Tensor, values: tf.Tensor,
                  mask: tf.Tensor) -> tf.Tensor:
    """One post-LN block for one query position: (B, 1, H) -> (B, 1, H), attending over
    `keys`/`values` (B, S, N, D) under `mask` (B, 1, S), as TransformerEncoderBlock.call."""
    # pylint: disable=protected-access
    attention = block._attention_layer
    query = attention._query_dense(state)
    output, _ = attention._compute_attention(query, keys, values, mask, training=False)
    output = attention._output_dense(output)
    output = block._attention_layer_norm(state + output)
    inner = block._intermediate_activation_layer(block._intermediate_dense(output))
    layer_output = tf.cast(block._output_dense(inner), tf.float32)
    return block._output_layer_norm(layer_output + output)
    # pylint: enable=protected-access

  def _log_probs(self, tokens: tf.Tensor, position: tf.Tensor, text_cache: list,
                 patch_cache: list, patch_mask: tf.Tensor) -> tuple[tf.Tensor, list]:
    """Log-probabilities (B, V) float64 of the token at `position` + 1 given `tokens`
    (B, L) up to `position`, and the text cache with that position's keys and values."""
    length = self.max_length
    state = self._encoder.embeddings.text_embeddings(tokens)[:, position][:, tf.newaxis]
    text_mask = tf.cast(tf.range(length) <= position, tf.float32)
    mask = tf.concat([tf.tile(text_mask[tf.newaxis, tf.newaxis], [tf.shape(tokens)[0], 1, 1]),
                      patch_mask], axis=2)
    within = tf.concat([mask[:, :, :length], tf.zeros_like(patch_mask)], axis=2)
    updated = []
    for layer, (block, (text_keys, text_values), (patch_keys, patch_values)) in enumerate(zip(
        self._encoder.transformer_layers, text_cache, patch_cache)):
      attention = block._attention_layer  # pylint: disable=protected-access
      one_hot = tf.one_hot(position, length, dtype=text_keys.dtype)[tf.newaxis, :, tf.newaxis,
                                                                    tf.newaxis]
      text_keys = text_keys * (1 - one_hot) + attention._key_dense(state) * one_hot  # pylint: disable=protected-access
      text_values = text_values * (1 - one_hot) + attention._value_dense(state) * one_hot  # pylint: disable=protected-access
      updated.append((text_keys, text_values))
      state = self._block_step(block, state, tf.concat([text_keys, patch_keys], axis=1),
                               tf.concat([text_values, patch_values], axis=1),
                               within if layer < self._fusion_layer else mask)
    logits = self._masked_lm(tf.cast(state, tf.float32),
                             masked_positions=tf.zeros([tf.shape(tokens)[0], 1], tf.int32))
    return tf.cast(tf.nn.log_softmax(tf.cast(logits[:, 0], tf.float32)), tf.float64), updated

  def _empty_text_cache(self, patch_cache: list, rows: tf.Tensor) -> list:
    length = self.max_length
    return [(tf.zeros(tf.concat([[rows, length], tf.shape(keys)[2:]], 0), keys.dtype),
             tf.zeros(tf.concat([[rows, length], tf.shape(values)[2:]], 0), values.dtype))
            for keys, values in patch_cache]

  def beam_search(self, features: tf.Tensor, boxes: tf.Tensor, beam_size: int | tf.Tensor = 1,
                  length_penalty: float = 1.0) -> tf.Tensor:
    """(B, L) int32 token ids `[CLS] caption [SEP] [PAD]...` of the best beam per image, from
    its (B, 55, F) patch features and (B, 55, 5) boxes (kaleido.model.beam_search; a beam of one
    is greedy decoding). `beam_size` may be a tensor (an exported signature's input)."""
    num_images = tf.shape(features)[0]
    patch_cache = [(tf.repeat(k, beam_size, axis=0), tf.repeat(v, beam_size, axis=0))
                   for k, v in self._patch_cache(features, boxes)]
    patch_mask = tf.tile(self._visible[tf.newaxis, tf.newaxis], [num_images * beam_size, 1, 1])

    def step(tokens, position, text_cache):
      return self._log_probs(tokens, position - 1, text_cache, patch_cache, patch_mask)

    tokens, _, _ = beam_search_lib.beam_search(
        step, self._empty_text_cache(patch_cache, num_images * beam_size), num_images,
        beam_size, self.max_length, self._cls, self._sep, self._pad, length_penalty)
    return tokens
