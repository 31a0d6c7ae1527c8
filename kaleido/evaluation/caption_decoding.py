"""Captions of a captioning run's model for evaluation: the one-shot decoder's argmax, or beam
search (kaleido.model.beam_search) with the key/value cache (kaleido.model.caption_decoder) or,
as the reference the cache is held to, with the whole encoder re-run for every token."""

from __future__ import annotations

from typing import Callable

import numpy as np
import tensorflow as tf

from kaleido import config as config_lib
from kaleido.dataloaders import finetuning
from kaleido.model import beam_search as beam_search_lib
from kaleido.model import caption_decoder
from kaleido.model import kaleido_bert
from kaleido.patches import kaleido_grid
from kaleido.text import vocab as vocab_lib

Encode = Callable[[dict[str, tf.Tensor]], dict[str, tf.Tensor]]


class CaptionDecoding:
  """Token ids of the captions of images given their patch features and boxes."""

  def __init__(self, model: kaleido_bert.KaleidoCaptioner, run: config_lib.ExperimentConfig,
               encode: Encode, special_ids: vocab_lib.SpecialIds, use_cache: bool = True):
    """`encode`: the model's backbone as a function of its inputs; `use_cache`: autoregressive
    captions with the key/value cache (off: the whole encoder for every token)."""
    self._model = model
    self._run = run
    self._encode = encode
    self._ids = special_ids
    self._cached_search = None
    if use_cache and run.task.finetune.caption_mode == kaleido_bert.AUTOREGRESSIVE:
      decoder = caption_decoder.CachedDecoder(model, special_ids.cls_id, special_ids.sep_id,
                                              special_ids.pad_id, run.model.kaleido_levels)
      self._cached_search = tf.function(decoder.beam_search, reduce_retracing=True)

  def decode(self, features: np.ndarray, boxes: np.ndarray, beam_size: int) -> list[list[int]]:
    """Each image's caption token ids (without [CLS] and [SEP]) from its (N, 55, F) patch
    `features` and (N, 55, 5) `boxes`; `beam_size` 1 is greedy."""
    ids, length = self._ids, self._run.model.max_seq_length
    if self._run.task.finetune.caption_mode == kaleido_bert.ONE_SHOT:
      word_ids = finetuning.one_shot_inputs(tf.zeros([len(features), length], tf.int32),
                                            ids.cls_id, ids.mask_id)
      sequence = self._encode({"input_word_ids": word_ids, "input_mask": tf.ones_like(word_ids),
                               "patch_boxes": tf.constant(boxes),
                               "patch_features": tf.constant(features)})["sequence_output"]
      positions = tf.broadcast_to(tf.range(length)[tf.newaxis], word_ids.shape)
      logits = self._model.masked_lm(sequence, masked_positions=positions)
      tokens = np.argmax(logits.numpy(), axis=-1)
      tokens[:, 0] = ids.cls_id
    elif self._cached_search is not None:
      tokens = self._cached_search(tf.constant(features), tf.constant(boxes), beam_size).numpy()
    else:
      step = uncached_caption_step(self._encode, self._model.masked_lm,
                                   np.repeat(features, beam_size, axis=0),
                                   np.repeat(boxes, beam_size, axis=0),
                                   self._run.model.kaleido_levels)
      tokens, _, _ = beam_search_lib.beam_search(step, (), len(features), beam_size, length,
                                                 ids.cls_id, ids.sep_id, ids.pad_id)
      tokens = tokens.numpy()
    return beam_search_lib.caption_ids(tokens, ids.cls_id, ids.sep_id, ids.pad_id)


def uncached_caption_step(encode, masked_lm, features: np.ndarray, boxes: np.ndarray,
                          kaleido_levels) -> beam_search_lib.StepFn:
  """A beam_search step of the autoregressive captioner without the key/value cache: the whole
  encoder (`encode`: inputs -> outputs) over the text so far under the UniLM mask, for the rows'
  (R, 55, F) patch `features` and (R, 55, 5) `boxes` (the reference the cache is held to)."""
  visible = kaleido_grid.visible_patches(kaleido_levels)

  def step(tokens, position, state):
    input_mask = tf.cast(tf.range(tf.shape(tokens)[1])[tf.newaxis] < position,
                         tf.int32) * tf.ones_like(tokens)
    inputs = {"input_word_ids": tokens, "input_mask": input_mask,
              "patch_boxes": tf.constant(boxes), "patch_features": tf.constant(features),
              "attention_mask": kaleido_bert.unilm_attention_mask(input_mask, visible)}
    sequence = encode(inputs)["sequence_output"]
    logits = masked_lm(sequence, masked_positions=tf.fill([tf.shape(tokens)[0], 1], position - 1))
    return tf.nn.log_softmax(tf.cast(logits[:, 0], tf.float32)), state

  return step
