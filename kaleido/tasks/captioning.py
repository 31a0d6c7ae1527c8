"""Fashion captioning (paper section 4.2) in two modes behind one flag.

- one_shot (the paper's): every text position after [CLS] is [MASK]; the tied MLM decoder predicts
  the whole caption at once from the image.
- autoregressive (the default): a UniLM-style sequence-to-sequence attention mask (patches see
  patches; text position i sees every patch and the text at positions <= i), trained to predict
  the token at i + 1 from position i; decoded greedily or by beam search.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras

from kaleido.model import losses as losses_lib
from kaleido.tasks import finetune

AUTOREGRESSIVE, ONE_SHOT = "autoregressive", "one_shot"


def unilm_attention_mask(input_mask: tf.Tensor, num_patches: int) -> tf.Tensor:
  """(B, L) text mask -> (B, L + P, L + P) mask: 1 where a query position may see a key position.

  Rows are queries, columns keys, in the encoder's order (L text positions, then P patches). Text
  position i sees the real text positions j <= i and all patches; patches see only patches.
  """
  input_mask = tf.cast(input_mask, tf.int32)
  batch, length = tf.shape(input_mask)[0], tf.shape(input_mask)[1]
  causal = tf.linalg.band_part(tf.ones([length, length], tf.int32), -1, 0)
  text_to_text = causal[tf.newaxis] * input_mask[:, tf.newaxis, :]
  text_rows = tf.concat([text_to_text, tf.ones([batch, length, num_patches], tf.int32)], axis=2)
  patch_rows = tf.concat([tf.zeros([batch, num_patches, length], tf.int32),
                          tf.ones([batch, num_patches, num_patches], tf.int32)], axis=2)
  return tf.concat([text_rows, patch_rows], axis=1)


def one_shot_inputs(word_ids: tf.Tensor, cls_id: int, mask_id: int) -> tf.Tensor:
  """(B, L) ids -> `[CLS] [MASK] ... [MASK]`: what the one-shot decoder sees."""
  masks = tf.fill(tf.shape(word_ids[:, 1:]), tf.cast(mask_id, word_ids.dtype))
  return tf.concat([tf.fill(tf.shape(word_ids[:, :1]), tf.cast(cls_id, word_ids.dtype)), masks],
                   axis=1)


def caption_targets(word_ids: tf.Tensor, input_mask: tf.Tensor,
                    mode: str) -> tuple[tf.Tensor, tf.Tensor]:
  """(B, L) `[CLS] caption [SEP]` -> (targets, weights), both (B, L), per decoder position.

  Autoregressive: position i predicts token i + 1 (the last real position predicts nothing).
  One-shot: position i predicts token i, for every real position but [CLS].
  """
  weights = tf.cast(input_mask, tf.float32)
  if mode == AUTOREGRESSIVE:
    targets = tf.concat([word_ids[:, 1:], tf.zeros_like(word_ids[:, :1])], axis=1)
    return targets, tf.concat([weights[:, 1:], tf.zeros_like(weights[:, :1])], axis=1)
  return word_ids, tf.concat([tf.zeros_like(weights[:, :1]), weights[:, 1:]], axis=1)


class UnilmAttentionMask(tf_keras.layers.Layer):
  """`unilm_attention_mask` as a layer of the functional model."""

  def __init__(self, num_patches: int, **kwargs):
    super().__init__(**kwargs)
    self._num_patches = num_patches

  def call(self, input_mask: tf.Tensor) -> tf.Tensor:
    return unilm_attention_mask(input_mask, self._num_patches)


class _AllPositions(tf_keras.layers.Layer):
  """(B, L) ids -> (B, L) positions 0..L-1, for the MLM decoder over every position."""

  def call(self, word_ids: tf.Tensor) -> tf.Tensor:
    positions = tf.range(tf.shape(word_ids)[1], dtype=tf.int32)
    return tf.broadcast_to(positions[tf.newaxis], tf.shape(word_ids))


class CaptionTask(finetune.FinetuneTask):
  """Token cross-entropy of the caption under the chosen decoder mode."""

  def __init__(self, config, special_ids):
    super().__init__(config, special_ids)
    if self.finetune.caption_mode not in (AUTOREGRESSIVE, ONE_SHOT):
      raise ValueError(f"Unknown caption mode {self.finetune.caption_mode!r}.")
    self.mode = self.finetune.caption_mode

  def model_outputs(self, model_inputs, parts):
    attention_mask = None
    if self.mode == AUTOREGRESSIVE:
      attention_mask = UnilmAttentionMask(self.config.model.num_patches,
                                          name="unilm_attention_mask")(model_inputs["input_mask"])
    sequence = self.encode(model_inputs, parts, attention_mask)["sequence_output"]
    positions = _AllPositions(name="all_positions")(model_inputs["input_word_ids"])
    logits = parts.heads.masked_lm(sequence, masked_positions=positions)
    return {"lm_logits": tf.cast(logits, tf.float32)}

  def dataset(self, batch_size, seed, input_context):
    ids, mode = self.special_ids, self.mode

    def to_caption_batch(batch):
      targets, weights = caption_targets(batch["input_word_ids"], batch["input_mask"], mode)
      word_ids, input_mask = batch["input_word_ids"], batch["input_mask"]
      if mode == ONE_SHOT:
        word_ids = one_shot_inputs(word_ids, ids.cls_id, ids.mask_id)
        input_mask = tf.ones_like(input_mask)
      return {"input_word_ids": word_ids, "input_mask": input_mask,
              "patches": batch["patches"], "patch_boxes": batch["patch_boxes"],
              "caption_ids": targets, "caption_weights": weights}

    return self.examples(batch_size, seed, input_context).map(
        to_caption_batch, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)

  def terms(self, batch, outputs):
    return losses_lib.classification_terms(batch["caption_ids"], outputs["lm_logits"],
                                           batch["caption_weights"])
