"""Input embeddings of Kaleido-BERT (paper section 3.5): text tokens, then the 55 kaleido patches.

Text: word + position + type 0, LayerNorm (epsilon 1e-12), dropout. Patches: dropout on the
feature, B2CM blanking (the feature is zeroed, type and box embeddings stay), a bias-free
projection of its own per level, + the type embedding of the level, + a shared bias-free
projection of the box `[x1, x2, y1, y2, w*h]`, LayerNorm, dropout.

Type ids: text 0, level n patches n, so the type table has 6 rows. (The original release gave
levels ids 1..5 in a 2-row table, so only level 1 got a type embedding.)
"""

from __future__ import annotations

import functools

import tensorflow as tf
import tf_keras
from official.nlp.modeling import layers

from kaleido.patches import kaleido_grid

TEXT_TYPE = 0
NUM_TYPES = 1 + len(kaleido_grid.LEVELS)  # type of level n is n
# The layers a BERT checkpoint supplies (the patch projections and patch LayerNorm are new).
TEXT_EMBEDDING_LAYERS = ("word_embeddings", "position_embeddings", "type_embeddings",
                         "text_layer_norm")


def initializer(stddev: float) -> tf_keras.initializers.Initializer:
  """BERT's weight initialiser; a new instance per layer."""
  return tf_keras.initializers.TruncatedNormal(stddev=stddev)


class KaleidoEmbeddings(tf_keras.layers.Layer):
  """{input_word_ids (B, L), patch_features (B, 55, F), patch_boxes (B, 55, 5), optional
  blank_positions (B, K) absolute patch indices} -> (B, L + 55, H) embeddings."""

  def __init__(self, vocab_size: int, hidden_size: int, max_seq_length: int,
               dropout_rate: float = 0.1, initializer_range: float = 0.02, **kwargs):
    super().__init__(**kwargs)
    init = functools.partial(initializer, initializer_range)
    self.word_embeddings = layers.OnDeviceEmbedding(
        vocab_size, hidden_size, initializer=init(), name="word_embeddings")
    self.position_embeddings = layers.PositionEmbedding(
        max_seq_length, initializer=init(), name="position_embeddings")
    self.type_embeddings = layers.OnDeviceEmbedding(
        NUM_TYPES, hidden_size, initializer=init(), use_one_hot=True, name="type_embeddings")
    self.level_projections = [
        tf_keras.layers.Dense(hidden_size, use_bias=False, kernel_initializer=init(),
                              name=f"level{level}_projection")
        for level in kaleido_grid.LEVELS]
    self.box_projection = tf_keras.layers.Dense(
        hidden_size, use_bias=False, kernel_initializer=init(), name="box_projection")
    self._text_norm = tf_keras.layers.LayerNormalization(
        epsilon=1e-12, dtype=tf.float32, name="text_layer_norm")
    self._patch_norm = tf_keras.layers.LayerNormalization(
        epsilon=1e-12, dtype=tf.float32, name="patch_layer_norm")
    self._feature_dropout = tf_keras.layers.Dropout(dropout_rate, name="feature_dropout")
    self._text_dropout = tf_keras.layers.Dropout(dropout_rate, name="text_dropout")
    self._patch_dropout = tf_keras.layers.Dropout(dropout_rate, name="patch_dropout")

  def call(self, inputs: dict[str, tf.Tensor]) -> tf.Tensor:
    text = self.text_embeddings(inputs["input_word_ids"])
    patches = self.patch_embeddings(inputs["patch_features"], inputs["patch_boxes"],
                                    inputs.get("blank_positions"))
    return tf.concat([text, patches], axis=1)

  def text_embeddings(self, word_ids: tf.Tensor) -> tf.Tensor:
    """(B, L) word ids -> (B, L, H): word + position + text type, normalised."""
    words = self.word_embeddings(word_ids)
    types = self.type_embeddings(tf.fill(tf.shape(word_ids), TEXT_TYPE))
    return self._text_dropout(self._text_norm(words + self.position_embeddings(words) + types))

  def patch_embeddings(self, features: tf.Tensor, boxes: tf.Tensor,
                       blank_positions: tf.Tensor | None = None) -> tf.Tensor:
    """(B, 55, F) features, (B, 55, 5) boxes -> (B, 55, H): per-level projection + level type
    + box projection, normalised (rows at `blank_positions` zeroed first, for B2CM)."""
    features = self._feature_dropout(features)
    if blank_positions is not None:
      features = blank(features, blank_positions)
    projected = tf.concat([projection(features[:, kaleido_grid.level_slice(level)])
                           for level, projection in zip(kaleido_grid.LEVELS,
                                                        self.level_projections)], axis=1)
    types = self.type_embeddings(tf.constant(kaleido_grid.patch_levels()))
    embeddings = projected + types + self.box_projection(boxes)
    return self._patch_dropout(self._patch_norm(embeddings))


def blank(features: tf.Tensor, positions: tf.Tensor) -> tf.Tensor:
  """(B, N, F) features with the rows at (B, K) indices `positions` zeroed."""
  blanked = tf.one_hot(positions, tf.shape(features)[1], dtype=features.dtype)
  keep = 1.0 - tf.reduce_max(blanked, axis=1)
  return features * keep[:, :, tf.newaxis]
