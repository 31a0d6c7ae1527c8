"""Greedy and beam-search captioning with the attention map of every generated token.

A caption starts after [CLS] and ends at [SEP] (neither is returned) or after `max_length - 1`
steps. [PAD], [UNK], [CLS] and [MASK] are never generated. The project's one beam search
(kaleido.model.beam_search) keeps the `beam_size` best partial captions by summed log-probability
and returns, per image, the caption with the best mean log-probability per token ([SEP]
included); greedy decoding is beam search with one beam.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import tensorflow as tf

from kaleido.alignment import captioner as captioner_lib
from kaleido.model import beam_search as beam_search_lib

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
    """Beam search of width `beam_size` (kaleido.model.beam_search; see the module docstring),
    carrying each beam's LSTM state and the attention map of every token it generated."""
    images = np.asarray(images, np.uint8)
    batch = len(images)
    if not batch:
      return []
    features, keys, h, c = self._start(images)
    features, keys, h, c = (tf.repeat(x, beam_size, axis=0) for x in (features, keys, h, c))
    steps = self._max_length - 1
    maps = tf.zeros([batch * beam_size, steps, self._grid * self._grid])

    def step(tokens, position, state):
      log_probs, h, c, alpha = self._step(tokens[:, position - 1], state["h"], state["c"],
                                          features, keys)
      written = tf.one_hot(position - 1, steps)[tf.newaxis, :, tf.newaxis]
      maps = state["maps"] * (1 - written) + alpha[:, tf.newaxis] * written
      return log_probs, {"h": h, "c": c, "maps": maps}

    config = self._captioner.config
    tokens, scores, state = beam_search_lib.beam_search(
        step, {"h": h, "c": c, "maps": maps}, batch, beam_size, self._max_length, config.cls_id,
        self._sep_id, self._pad_id)
    return [self._caption(row, row_maps, score) for row, row_maps, score in
            zip(tokens.numpy(), state["maps"].numpy(), scores.numpy())]

  def _caption(self, tokens: np.ndarray, maps: np.ndarray, score: float) -> Caption:
    """A decoded row `[CLS] caption [SEP] [PAD]...` and its maps -> the Caption."""
    generated = tokens[1:]
    is_sep = generated == self._sep_id
    end = int(is_sep.argmax()) if is_sep.any() else len(generated)
    return Caption(token_ids=generated[:end].astype(np.int32),
                   attention=maps[:end].reshape(end, self._grid, self._grid),
                   log_prob=float(score))
