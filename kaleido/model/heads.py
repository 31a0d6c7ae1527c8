"""Task heads on the backbone's outputs (paper sections 3.6 and 4.2), computing in float32.

Each head is a small layer: the masked-LM decoder (tf-models-official `MaskedLM`, tied to the
word embeddings), linear classifiers on the pooled output (ITM, category) or on one kaleido
level's hidden states (RR on L1, JPS on L2, CP on L3), and bias-free feature regressors at given
patch positions (G2CM, B2CM). Logits and predictions are float32 under mixed precision (the
vocabulary logits are computed in the policy's dtype, then cast).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras
from official.nlp.modeling import layers

from kaleido.model import embeddings as embeddings_lib
from kaleido.model import encoder as encoder_lib
from kaleido.patches import kaleido_grid

NUM_CLASSES_ITM = 2
ITM_MATCHED = 1  # the ITM class of a matched pair


def itm_margin(itm_logits: tf.Tensor) -> tf.Tensor:
  """(B, 2) ITM logits -> (B,) log-odds z_matched - z_unmatched, the retrieval score: the same
  order as the matched probability, which saturates at 1.0 (and would tie) once the margin
  passes about 17 in float32."""
  logits = tf.cast(itm_logits, tf.float32)
  return logits[:, ITM_MATCHED] - logits[:, 1 - ITM_MATCHED]


def linear_head(units: int, name: str, initializer_range: float = 0.02,
                use_bias: bool = True) -> tf_keras.layers.Dense:
  """A float32 linear head."""
  return tf_keras.layers.Dense(units, use_bias=use_bias, dtype=tf.float32, name=name,
                               kernel_initializer=embeddings_lib.initializer(initializer_range))


def masked_lm_head(embedding_table: tf.Variable, hidden_act: str = "gelu_approximate",
                   initializer_range: float = 0.02, name: str = "masked_lm") -> layers.MaskedLM:
  """The MLM decoder: Dense + activation + LayerNorm, then the tied word embeddings."""
  return layers.MaskedLM(embedding_table, activation=encoder_lib.HIDDEN_ACTIVATIONS[hidden_act],
                         initializer=embeddings_lib.initializer(initializer_range), name=name)


def level_states(patch_states: tf.Tensor, level: int) -> tf.Tensor:
  """(B, 55, H) patch hidden states -> (B, n*n*H): level n's states, flattened in patch order."""
  hidden_size = patch_states.shape[-1]
  return tf.reshape(patch_states[:, kaleido_grid.level_slice(level)],
                    [-1, level * level * hidden_size])


class PretrainingHeads(tf_keras.layers.Layer):
  """{sequence_output, pooled_output, masked_lm_positions, grey_positions, blank_positions} ->
  {mlm_logits, itm_logits, rr_logits, jps_logits, cp_logits, g2cm_predictions,
  b2cm_predictions}, the logits and feature predictions of the seven pre-training tasks.

  `contrastive` (optional, the ITC head) is held here, so checkpoints keep it beside the other
  heads, but reads a pass of its own: the model calls it.
  """

  def __init__(self, embedding_table: tf.Variable, feature_size: int = 2048,
               hidden_act: str = "gelu_approximate", initializer_range: float = 0.02,
               contrastive: ContrastiveHead | None = None, **kwargs):
    super().__init__(**kwargs)
    self.contrastive = contrastive
    self.masked_lm = masked_lm_head(embedding_table, hidden_act, initializer_range)
    self.itm = linear_head(NUM_CLASSES_ITM, "itm", initializer_range)
    self.rr = linear_head(kaleido_grid.NUM_ROTATIONS, "rr", initializer_range)
    self.jps = linear_head(len(kaleido_grid.JIGSAW_PERMUTATIONS), "jps", initializer_range)
    self.cp = linear_head(kaleido_grid.NUM_CAMOUFLAGE_SLOTS, "cp", initializer_range)
    self.g2cm = linear_head(feature_size, "g2cm", initializer_range, use_bias=False)
    self.b2cm = linear_head(feature_size, "b2cm", initializer_range, use_bias=False)

  def call(self, inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    sequence = inputs["sequence_output"]
    patches = sequence[:, -kaleido_grid.NUM_PATCHES:]  # after the text, however long
    mlm_logits = self.masked_lm(sequence, masked_positions=inputs["masked_lm_positions"])
    return {
        "mlm_logits": tf.cast(mlm_logits, tf.float32),
        "itm_logits": self.itm(inputs["pooled_output"]),
        "rr_logits": self.rr(level_states(patches, 1)),
        "jps_logits": self.jps(level_states(patches, 2)),
        "cp_logits": self.cp(level_states(patches, 3)),
        "g2cm_predictions": self.g2cm(tf.gather(patches, inputs["grey_positions"], batch_dims=1)),
        "b2cm_predictions": self.b2cm(tf.gather(patches, inputs["blank_positions"],
                                                batch_dims=1)),
    }


class ClassificationHead(tf_keras.layers.Layer):
  """(B, H) pooled output -> (B, num_classes) float32 logits, with dropout before the dense
  layer (category and subcategory recognition)."""

  def __init__(self, num_classes: int, dropout_rate: float = 0.1,
               initializer_range: float = 0.02, **kwargs):
    super().__init__(**kwargs)
    self._config = dict(num_classes=num_classes, dropout_rate=dropout_rate,
                        initializer_range=initializer_range)
    self.dropout = tf_keras.layers.Dropout(dropout_rate, name="classifier_dropout")
    self.dense = linear_head(num_classes, "classifier", initializer_range)

  def get_config(self) -> dict:
    return {**super().get_config(), **self._config}

  def call(self, pooled: tf.Tensor) -> tf.Tensor:
    return self.dense(self.dropout(pooled))


class ContrastiveHead(tf_keras.layers.Layer):
  """ITC: a text-only and an image-only encoding -> unit-length embeddings in one space.

  {sequence_output (B, L + 55, H) of a pass under `unimodal_attention_mask`, input_mask} ->
  {itc_text (B, D): the projected mean of the real text states, itc_image (B, D): the projected
  mean of the visible patch states, itc_logit_scale: the learned inverse temperature}, float32.
  The scale starts at 1 / `temperature` and is capped at MAX_LOGIT_SCALE.
  """

  MAX_LOGIT_SCALE = 100.0

  def __init__(self, dim: int = 256, temperature: float = 0.07,
               kaleido_levels=kaleido_grid.LEVELS, initializer_range: float = 0.02, **kwargs):
    super().__init__(**kwargs)
    self._visible_patches = kaleido_grid.visible_patches(kaleido_levels)
    self._initial_log_scale = float(np.log(1.0 / temperature))
    self.text_projection = linear_head(dim, "text_projection", initializer_range)
    self.image_projection = linear_head(dim, "image_projection", initializer_range)

  def build(self, input_shape):
    self.log_logit_scale = self.add_weight(
        "log_logit_scale", shape=(), dtype=tf.float32,
        initializer=tf_keras.initializers.Constant(self._initial_log_scale))
    super().build(input_shape)

  def call(self, inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    sequence = tf.cast(inputs["sequence_output"], tf.float32)
    text_length = tf.shape(inputs["input_mask"])[1]
    text = encoder_lib.masked_mean(sequence[:, :text_length], inputs["input_mask"])
    patches = sequence[:, text_length:]
    visible = tf.tile(tf.constant(self._visible_patches)[tf.newaxis], [tf.shape(patches)[0], 1])
    image = encoder_lib.masked_mean(patches, visible)
    scale = tf.minimum(tf.exp(self.log_logit_scale), self.MAX_LOGIT_SCALE)
    return {"itc_text": tf.math.l2_normalize(self.text_projection(text), axis=-1),
            "itc_image": tf.math.l2_normalize(self.image_projection(image), axis=-1),
            "itc_logit_scale": scale}
