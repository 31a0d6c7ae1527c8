"""Greedy and beam-search captioning with the attention map of every generated token.

A caption starts after [CLS] and ends at [SEP] (neither is returned) or after `max_length - 1`
steps. [PAD], [UNK], [CLS] and [MASK] are never generated. Beam search keeps the `beam_size`
best partial captions by summed log-probability and returns, per image, the finished caption
with the best mean log-probability per token ([SEP] included); greedy decoding is beam search
with one beam.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import tensorflow as tf

from kaleido.alignment import captioner as captioner_lib

BANNED_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[MASK]")


@dataclasses.dataclass(frozen=True)
class Caption:
  """One generated caption."""
  token_ids: np.ndarray  # (T,) int32, without [CLS] and [SEP]
  attention: np.ndarray  # (T, G, G) float32, the map that produced each token (sums to 1)
  log_prob: float  # summed over the tokens and the closing [SEP] when there is one


class CaptionDecoder:
  """Decodes batches of (B, S, S, 3) uint8 crops with a trained `Captioner`."""

  def __init__(self, captioner: captioner_lib.Captioner, vocab_tokens: Sequence[str]):
    self._captioner = captioner
    config = captioner.config
    if len(vocab_tokens) != config.vocab_size:
      raise ValueError(f"The captioner speaks {config.vocab_size} tokens, the vocabulary given "
                       f"has {len(vocab_tokens)}.")
    self._grid = config.grid_size
    self._max_length = config.max_length
    self._sep_id = config.sep_id
    self._pad_id = config.pad_id
    penalty = np.zeros(config.vocab_size, np.float32)
    penalty[[i for i, token in enumerate(vocab_tokens) if token in BANNED_TOKENS]] = -np.inf
    self._penalty = tf.constant(penalty)
    image_spec = tf.TensorSpec([None, config.image_size, config.image_size, 3], tf.uint8)
    state_spec = tf.TensorSpec([None, config.hidden_size], tf.float32)
    self._start = tf.function(self._start_fn, input_signature=[image_spec])
    self._step = tf.function(self._step_fn, input_signature=[
        tf.TensorSpec([None], tf.int32), state_spec, state_spec,
        tf.TensorSpec([None, None, config.feature_size], tf.float32),
        tf.TensorSpec([None, None, config.attention_size], tf.float32)])

  def _start_fn(self, images: tf.Tensor):
    features, keys = self._captioner.encode(images, training=False)
    h, c = self._captioner.initial_state(features)
    return features, keys, h, c

  def _step_fn(self, tokens, h, c, features, keys):
    logits, (h, c), alpha, _ = self._captioner.step(tokens, (h, c), features, keys)
    return tf.nn.log_softmax(logits) + self._penalty, h, c, alpha

  def greedy(self, images: np.ndarray) -> list[Caption]:
    """The most likely token at every step."""
    return self.beam_search(images, beam_size=1)

  def beam_search(self, images: np.ndarray, beam_size: int = 3) -> list[Caption]:
    """Beam search of width `beam_size` (see the module docstring)."""
    images = np.asarray(images, np.uint8)
    batch, k = len(images), beam_size
    if not batch:
      return []
    features, keys, h, c = self._start(images)
    features, keys, h, c = (tf.repeat(x, k, axis=0) for x in (features, keys, h, c))
    scores = np.full((batch, k), -np.inf)
    scores[:, 0] = 0.0
    finished = np.zeros((batch, k), bool)
    tokens = np.zeros((batch, k, 0), np.int32)
    maps = np.zeros((batch, k, 0, self._grid * self._grid), np.float32)
    previous = np.full(batch * k, self._captioner.config.cls_id, np.int32)
    for _ in range(self._max_length - 1):
      log_probs, h, c, alpha = self._step(previous, h, c, features, keys)
      log_probs = log_probs.numpy().reshape(batch, k, -1)
      log_probs[finished] = -np.inf
      log_probs[finished, self._pad_id] = 0.0  # a finished caption keeps its score
      total = (scores[..., None] + log_probs).reshape(batch, -1)
      best = np.argsort(-total, axis=1, kind="stable")[:, :k]
      parent, token = np.divmod(best, log_probs.shape[-1])
      scores = np.take_along_axis(total, best, axis=1)
      rows = (np.arange(batch)[:, None] * k + parent).ravel()
      h, c = tf.gather(h, rows), tf.gather(c, rows)
      alpha = alpha.numpy().reshape(batch, k, -1)
      tokens = np.concatenate([np.take_along_axis(tokens, parent[..., None], axis=1),
                               token[..., None].astype(np.int32)], axis=2)
      maps = np.concatenate([np.take_along_axis(maps, parent[..., None, None], axis=1),
                             np.take_along_axis(alpha, parent[..., None], axis=1)[:, :, None]],
                            axis=2)
      finished = np.take_along_axis(finished, parent, axis=1) | (token == self._sep_id)
      previous = token.ravel().astype(np.int32)
      if finished.all():
        break
    return [self._best(tokens[i], maps[i], scores[i]) for i in range(batch)]

  def _best(self, tokens: np.ndarray, maps: np.ndarray, scores: np.ndarray) -> Caption:
    """The beam with the best mean log-probability per token, cut before its [SEP]."""
    is_sep = tokens == self._sep_id
    ends = np.where(is_sep.any(axis=1), is_sep.argmax(axis=1), tokens.shape[1])
    scored = np.minimum(ends + 1, tokens.shape[1])  # tokens up to and including [SEP]
    normalised = np.where(np.isfinite(scores), scores / np.maximum(scored, 1), -np.inf)
    choice = int(np.argmax(normalised))
    end = ends[choice]
    return Caption(token_ids=tokens[choice, :end].astype(np.int32),
                   attention=maps[choice, :end].reshape(end, self._grid, self._grid),
                   log_prob=float(scores[choice]))
