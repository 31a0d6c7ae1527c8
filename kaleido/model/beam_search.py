"""The one beam search of every caption decoder: Kaleido-BERT's (with or without its key/value
cache, in evaluation and in exported graphs) and the alignment captioner's.

Each image keeps `beam_size` beams, rows [i * K, (i + 1) * K) of every tensor. A beam ends at the
end token (or at `max_length`); a finished beam may only continue with the pad token, at no cost,
so it keeps its score. The best beam of an image maximises its summed log-probability divided by
(generated tokens, the end token included) ** `length_penalty`; ties go to the lower index. A beam
of one is greedy decoding. Model Garden's `sequence_beam_search` differs (GNMT length penalty,
finished beams kept apart), and would change the captions the project has measured.
"""

from __future__ import annotations

from typing import Any, Callable

import tensorflow as tf

# (tokens (R, L) int32 so far, position () int32 to fill, state) -> ((R, V) log-probabilities of
# the token at `position`, the new state); R = images x beams, `state` any nest of (R, ...)
# tensors, reordered with the beams.
StepFn = Callable[[tf.Tensor, tf.Tensor, Any], tuple[tf.Tensor, Any]]


def beam_search(step_fn: StepFn, state: Any, num_images: int | tf.Tensor,
                beam_size: int | tf.Tensor, max_length: int, start_id: int, end_id: int,
                pad_id: int, length_penalty: float = 1.0) -> tuple[tf.Tensor, tf.Tensor, Any]:
  """The best beam of each image: its (B, max_length) int32 tokens `[start] ... [end] [pad]...`,
  its (B,) float64 summed log-probability and its rows of the final `state` (given for the
  num_images x beam_size rows). Runs as a Python loop eagerly and as a while loop in a graph;
  `beam_size` may be a tensor (an exported signature's input)."""
  rows = num_images * beam_size
  tokens = tf.concat([tf.fill([rows, 1], start_id), tf.fill([rows, max_length - 1], pad_id)],
                     axis=1)
  first = tf.concat([[0.0], tf.fill(tf.reshape(beam_size - 1, [1]), -float("inf"))], 0)
  scores = tf.tile(tf.cast(first, tf.float64), [num_images])
  lengths = tf.zeros([rows], tf.int32)
  finished = tf.zeros([rows], tf.bool)

  def not_done(position, tokens, scores, lengths, finished, state):
    del tokens, scores, lengths, state
    return tf.logical_and(position < max_length, tf.logical_not(tf.reduce_all(finished)))

  def step(position, tokens, scores, lengths, finished, state):
    log_probs, state = step_fn(tokens, position, state)
    log_probs = tf.cast(log_probs, tf.float64)
    vocab_size = tf.shape(log_probs)[1]
    pad_only = tf.where(tf.range(vocab_size)[tf.newaxis] == pad_id,
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
    state = tf.nest.map_structure(lambda value: tf.gather(value, source), state)
    column = tf.where(finished, pad_id, new_tokens)
    tokens = tf.tensor_scatter_nd_update(
        tokens, tf.stack([tf.range(rows), tf.fill([rows], position)], axis=1), column)
    lengths += tf.cast(tf.logical_not(finished), tf.int32)
    finished = tf.logical_or(finished, tf.equal(new_tokens, end_id))
    return position + 1, tokens, tf.reshape(best_scores, [-1]), lengths, finished, state

  any_rows = lambda value: tf.TensorShape([None]).concatenate(value.shape[1:])
  _, tokens, scores, lengths, _, state = tf.while_loop(
      not_done, step, [tf.constant(1), tokens, scores, lengths, finished, state],
      shape_invariants=[tf.TensorShape([]), tf.TensorShape([None, max_length]),
                        tf.TensorShape([None]), tf.TensorShape([None]), tf.TensorShape([None]),
                        tf.nest.map_structure(any_rows, state)])
  normalised = scores / tf.cast(tf.maximum(lengths, 1), tf.float64) ** length_penalty
  best_beam = tf.argmax(tf.reshape(normalised, [num_images, beam_size]), axis=1,
                        output_type=tf.int32)
  chosen = tf.range(num_images) * beam_size + best_beam
  return (tf.gather(tokens, chosen), tf.gather(scores, chosen),
          tf.nest.map_structure(lambda value: tf.gather(value, chosen), state))


def caption_ids(tokens, start_id: int, end_id: int, pad_id: int) -> list[list[int]]:
  """Decoded rows -> each caption's token ids (after the start token, up to the first end)."""
  captions = []
  for row in tokens:
    ids = []
    for token in row[1:]:
      if token == end_id:
        break
      if token not in (pad_id, start_id):
        ids.append(int(token))
    captions.append(ids)
  return captions
