"""Beam search for the autoregressive caption decoder (greedy decoding is a beam of one)."""

from __future__ import annotations

from typing import Callable

import numpy as np

# (token_ids (N, L) int32, position t, image_rows (N,)) -> (N, V) log-probabilities of the token
# at position t, given the tokens before it and image image_rows[n] of the batch.
StepFn = Callable[[np.ndarray, int, np.ndarray], np.ndarray]


def beam_search(step_fn: StepFn, num_images: int, max_length: int, cls_id: int, sep_id: int,
                pad_id: int, beam_size: int = 1, length_penalty: float = 1.0) -> np.ndarray:
  """(num_images, max_length) token ids `[CLS] caption [SEP] [PAD]...` of the best beam.

  Beams end at [SEP] (or at max_length). The best finished beam maximises the summed
  log-probability divided by (number of generated tokens) ** length_penalty.
  """
  rows = np.repeat(np.arange(num_images), beam_size)
  tokens = np.full((num_images * beam_size, max_length), pad_id, np.int32)
  tokens[:, 0] = cls_id
  scores = np.tile(np.r_[0.0, np.full(beam_size - 1, -np.inf)], num_images)
  lengths = np.zeros(num_images * beam_size, np.int32)  # generated tokens, [SEP] included
  finished = np.zeros(num_images * beam_size, bool)
  for position in range(1, max_length):
    if finished.all():
      break
    log_probs = np.asarray(step_fn(tokens, position, rows), np.float64)
    vocab_size = log_probs.shape[1]
    # A finished beam may only continue with [PAD], at no cost, so it keeps its score.
    log_probs[finished] = -np.inf
    log_probs[finished, pad_id] = 0.0
    candidates = (scores[:, None] + log_probs).reshape(num_images, beam_size * vocab_size)
    best = np.argsort(-candidates, axis=1, kind="stable")[:, :beam_size]
    source = (best // vocab_size + np.arange(num_images)[:, None] * beam_size).reshape(-1)
    new_tokens = (best % vocab_size).reshape(-1)
    tokens, lengths, finished = tokens[source], lengths[source], finished[source]
    scores = np.take_along_axis(candidates, best, axis=1).reshape(-1)
    tokens[:, position] = np.where(finished, pad_id, new_tokens)
    lengths = lengths + ~finished
    finished = finished | (new_tokens == sep_id)
  normalised = scores / np.maximum(lengths, 1) ** length_penalty
  best_beam = np.argmax(normalised.reshape(num_images, beam_size), axis=1)
  return tokens[np.arange(num_images) * beam_size + best_beam]


def caption_ids(tokens: np.ndarray, cls_id: int, sep_id: int, pad_id: int) -> list[list[int]]:
  """Decoded rows -> the caption's token ids (after [CLS], up to the first [SEP])."""
  captions = []
  for row in tokens:
    ids = []
    for token in row[1:]:
      if token == sep_id:
        break
      if token not in (pad_id, cls_id):
        ids.append(int(token))
    captions.append(ids)
  return captions
