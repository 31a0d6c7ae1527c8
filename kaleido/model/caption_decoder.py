"""Autoregressive captions with a key/value cache (greedy and beam search), in TensorFlow ops.

Under the UniLM mask of the autoregressive captioner (kaleido_bert.unilm_attention_mask) the
patches never attend to text, so every layer's patch keys and values are computed once per image,
and each new text position needs only its own query, key and value per layer: one decoding step
costs one position's pass through the encoder instead of the whole sequence's. The same ops run
in Python evaluation (evaluate.py) and inside exported SavedModels.

The step reuses the weights of the encoder's tf-models-official TransformerEncoderBlocks (post-LN,
tf_keras MultiHeadAttention) and so reads their sublayers; `tests/test_caption_decoder.py` holds it
to the full encoder's logits.
"""

from __future__ import annotations

import tensorflow as tf

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
    updated = []
    for block, (text_keys, text_values), (patch_keys, patch_values) in zip(
        self._encoder.transformer_layers, text_cache, patch_cache):
      attention = block._attention_layer  # pylint: disable=protected-access
      one_hot = tf.one_hot(position, length, dtype=text_keys.dtype)[tf.newaxis, :, tf.newaxis,
                                                                    tf.newaxis]
      text_keys = text_keys * (1 - one_hot) + attention._key_dense(state) * one_hot  # pylint: disable=protected-access
      text_values = text_values * (1 - one_hot) + attention._value_dense(state) * one_hot  # pylint: disable=protected-access
      updated.append((text_keys, text_values))
      state = self._block_step(block, state, tf.concat([text_keys, patch_keys], axis=1),
                               tf.concat([text_values, patch_values], axis=1), mask)
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
    its (B, 55, F) patch features and (B, 55, 5) boxes; a beam of one is greedy decoding.

    The same search as kaleido.evaluation.caption_decoding.beam_search: beams end at [SEP],
    finished beams continue with [PAD] at no cost, the best maximises the summed
    log-probability over (generated tokens) ** length_penalty, ties go to the lower index.
    `beam_size` may be a tensor (an exported signature's input).
    """
    num_images = tf.shape(features)[0]
    rows = num_images * beam_size
    length = self.max_length
    patch_cache = [(tf.repeat(k, beam_size, axis=0), tf.repeat(v, beam_size, axis=0))
                   for k, v in self._patch_cache(features, boxes)]
    patch_mask = tf.tile(self._visible[tf.newaxis, tf.newaxis], [rows, 1, 1])
    tokens = tf.concat([tf.fill([rows, 1], self._cls),
                        tf.fill([rows, length - 1], self._pad)], axis=1)
    first = tf.concat([[0.0], tf.fill(tf.reshape(beam_size - 1, [1]), -float("inf"))], 0)
    scores = tf.tile(tf.cast(first, tf.float64), [num_images])
    lengths = tf.zeros([rows], tf.int32)
    finished = tf.zeros([rows], tf.bool)
    text_cache = self._empty_text_cache(patch_cache, rows)

    def not_done(position, tokens, scores, lengths, finished, text_cache):
      del tokens, scores, lengths, text_cache
      return tf.logical_and(position < length, tf.logical_not(tf.reduce_all(finished)))

    def step(position, tokens, scores, lengths, finished, text_cache):
      log_probs, text_cache = self._log_probs(tokens, position - 1, text_cache, patch_cache,
                                              patch_mask)
      vocab_size = tf.shape(log_probs)[1]
      pad_only = tf.where(tf.range(vocab_size)[tf.newaxis] == self._pad,
                          tf.constant(0.0, tf.float64), tf.constant(-float("inf"), tf.float64))
      log_probs = tf.where(finished[:, tf.newaxis], pad_only, log_probs)
      candidates = tf.reshape(scores[:, tf.newaxis] + log_probs,
                              [num_images, beam_size * vocab_size])
      best_scores, best = tf.math.top_k(candidates, k=beam_size, sorted=True)
      source = tf.reshape(best // vocab_size + tf.range(num_images)[:, tf.newaxis] * beam_size,
                          [-1])
      new_tokens = tf.reshape(best % vocab_size, [-1])
      tokens, lengths, finished = (tf.gather(tokens, source), tf.gather(lengths, source),
                                   tf.gather(finished, source))
      text_cache = [(tf.gather(k, source), tf.gather(v, source)) for k, v in text_cache]
      column = tf.where(finished, self._pad, new_tokens)
      tokens = tf.tensor_scatter_nd_update(
          tokens, tf.stack([tf.range(rows), tf.fill([rows], position)], axis=1), column)
      lengths += tf.cast(tf.logical_not(finished), tf.int32)
      finished = tf.logical_or(finished, tf.equal(new_tokens, self._sep))
      return (position + 1, tokens, tf.reshape(best_scores, [-1]), lengths, finished,
              text_cache)

    _, tokens, scores, lengths, _, _ = tf.while_loop(
        not_done, step, [tf.constant(1), tokens, scores, lengths, finished, text_cache],
        shape_invariants=[tf.TensorShape([]), tf.TensorShape([None, length]),
                          tf.TensorShape([None]), tf.TensorShape([None]), tf.TensorShape([None]),
                          [(tf.TensorShape([None, length] + k.shape[2:]),
                            tf.TensorShape([None, length] + v.shape[2:]))
                           for k, v in text_cache]])
    normalised = scores / tf.cast(tf.maximum(lengths, 1), tf.float64) ** length_penalty
    best_beam = tf.argmax(tf.reshape(normalised, [num_images, beam_size]), axis=1,
                          output_type=tf.int32)
    return tf.gather(tokens, tf.range(num_images) * beam_size + best_beam)
