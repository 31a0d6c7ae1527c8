"""The Show-Attend-Tell captioner (Xu et al. 2015, soft deterministic attention) in tf_keras.

Encoder: a CNN feature grid of the square product crop, G x G cells (G = image_size / stride),
each projected to an annotation vector a_i. Decoder: an LSTM that at every step t attends over the
G*G annotation vectors, alpha_t = softmax_i(w . tanh(W_a a_i + W_h h_{t-1})), gates the context
z_t = beta_t * sum_i alpha_ti a_i with a scalar beta_t = sigmoid(f_beta(h_{t-1})), and predicts the
next token with SAT's deep output layer p(y_t) ~ exp(L_o(E y_{t-1} + L_h h_t + L_z z_t)). The
initial LSTM state comes from the mean annotation vector.

Attention cell k of the grid is row k // G, column k % G, and covers the crop fractions
[col / G, (col + 1) / G] x [row / G, (row + 1) / G].
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras

from kaleido import config as config_lib
from kaleido.alignment import config as align_config
from kaleido.model import patch_embedder

SMALL_FILTERS = (32, 64, 128, 256)


def _small_cnn(image_size: int) -> tf_keras.Model:
  """Four stride-2 stages of 4x4 convolutions, batch norm and ReLU: a 16x smaller grid. A 4x4
  kernel at stride 2 pads one pixel on each side, so the receptive field of cell (r, c) is
  centred on that cell's own square of the crop (a 3x3 kernel would shift it by half a cell),
  and spans 46 pixels: what a cell describes is where it is."""
  inputs = tf_keras.Input((image_size, image_size, 3), name="pixels")
  x = inputs
  for i, filters in enumerate(SMALL_FILTERS):
    x = tf_keras.layers.Conv2D(filters, 4, strides=2, padding="same", use_bias=False,
                               kernel_initializer="he_normal", name=f"conv{i}")(x)
    x = tf_keras.layers.BatchNormalization(name=f"bn{i}")(x)
    x = tf_keras.layers.ReLU(name=f"relu{i}")(x)
  return tf_keras.Model(inputs, x, name="small_grid")


def build_cnn(cnn: str, image_size: int) -> tf_keras.Model:
  """(B, S, S, 3) preprocessed pixels -> (B, G, G, C) feature grid, random weights (ImageNet
  weights are loaded by the captioner task's initialisation)."""
  if cnn == "resnet50":
    return tf_keras.applications.ResNet50(include_top=False, weights=None,
                                          input_shape=(image_size, image_size, 3))
  if cnn == "small":
    return _small_cnn(image_size)
  raise align_config.AlignmentError(f"Unknown captioner CNN {cnn!r}; use one of "
                                    f"{', '.join(config_lib.CNNS)}.")


class Captioner(tf_keras.Model):
  """SAT captioner. `call` runs teacher forcing; `encode`, `initial_state` and `step` decode."""

  def __init__(self, config: config_lib.CaptionerConfig, **kwargs):
    super().__init__(name=kwargs.pop("name", "captioner"), **kwargs)
    self.config = config
    self._cnn_trainable = config.cnn_trainable
    self.cnn = build_cnn(config.cnn, config.image_size)
    self.cnn.trainable = config.cnn_trainable
    dense = tf_keras.layers.Dense
    self.project = dense(config.feature_size, activation="relu", name="annotation")
    self.init_h = dense(config.hidden_size, activation="tanh", name="init_h")
    self.init_c = dense(config.hidden_size, activation="tanh", name="init_c")
    self.attention_features = dense(config.attention_size, name="attention_features")
    self.attention_hidden = dense(config.attention_size, use_bias=False, name="attention_hidden")
    self.attention_score = dense(1, name="attention_score")
    self.gate = dense(1, activation="sigmoid", name="gate")
    self.embedding = tf_keras.layers.Embedding(config.vocab_size, config.embedding_size,
                                               name="embedding")
    self.lstm = tf_keras.layers.LSTMCell(config.hidden_size, name="lstm")
    self.deep_hidden = dense(config.embedding_size, name="deep_hidden")
    self.deep_context = dense(config.embedding_size, use_bias=False, name="deep_context")
    self.output_dropout = tf_keras.layers.Dropout(config.dropout, name="output_dropout")
    self.output_layer = dense(config.vocab_size, name="output")
    self._build_layers()

  def _build_layers(self) -> None:
    """Creates every variable now: the decoder layers run inside a while loop, where a layer
    must not create variables on its first call."""
    c = self.config
    channels = self.cnn.output_shape[-1]
    self.project.build((None, channels))
    for layer in (self.init_h, self.init_c, self.attention_features):
      layer.build((None, c.feature_size))
    self.gate.build((None, c.hidden_size))
    self.attention_hidden.build((None, c.hidden_size))
    self.attention_score.build((None, c.attention_size))
    self.embedding.build((None,))
    self.lstm.build((None, c.embedding_size + c.feature_size))
    self.deep_hidden.build((None, c.hidden_size))
    self.deep_context.build((None, c.feature_size))
    self.output_layer.build((None, c.embedding_size))

  @property
  def grid_size(self) -> int:
    return self.config.grid_size

  def encode(self, images: tf.Tensor, training: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
    """(B, S, S, 3) uint8 crops -> annotation vectors (B, N, D) and attention keys (B, N, A)."""
    run_training = training if self._cnn_trainable else False
    grid = self.cnn(patch_embedder.preprocess(self.config.cnn, tf.cast(images, tf.float32)),
                    training=run_training)
    if not self._cnn_trainable:
      grid = tf.stop_gradient(grid)
    cells = tf.reshape(grid, [tf.shape(grid)[0], -1, grid.shape[-1]])
    features = self.project(cells)
    return features, self.attention_features(features)

  def initial_state(self, features: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """LSTM (h, c) from the mean annotation vector."""
    mean = tf.reduce_mean(features, axis=1)
    return self.init_h(mean), self.init_c(mean)

  def _attend(self, h: tf.Tensor, features: tf.Tensor, keys: tf.Tensor
              ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Attention (B, N) over the grid, gate beta (B, 1) and gated context (B, D) for state h."""
    scores = self.attention_score(tf.tanh(keys + self.attention_hidden(h)[:, None, :]))
    alpha = tf.nn.softmax(scores[..., 0], axis=-1)
    beta = self.gate(h)
    return alpha, beta, beta * tf.einsum("bn,bnd->bd", alpha, features)

  def _readout(self, embedded: tf.Tensor, output: tf.Tensor, context: tf.Tensor,
               training: bool) -> tf.Tensor:
    """SAT's deep output layer: logits from E y_{t-1}, h_t and z_t (any leading axes)."""
    deep = embedded + self.deep_hidden(output) + self.deep_context(context)
    return self.output_layer(self.output_dropout(deep, training=training))

  def step(self, tokens: tf.Tensor, state: tuple[tf.Tensor, tf.Tensor], features: tf.Tensor,
           keys: tf.Tensor, training: bool = False
           ) -> tuple[tf.Tensor, tuple[tf.Tensor, tf.Tensor], tf.Tensor, tf.Tensor]:
    """One decoder step from the previous tokens (B,): logits (B, V), new state, attention
    (B, N) summing to 1 over the grid, and the gate beta (B,)."""
    embedded = self.embedding(tokens)
    alpha, beta, context = self._attend(state[0], features, keys)
    output, state = self.lstm(tf.concat([embedded, context], axis=-1), list(state),
                              training=training)
    return self._readout(embedded, output, context, training), tuple(state), alpha, beta[:, 0]

  def call(self, inputs: dict[str, tf.Tensor], training: bool = False) -> dict[str, tf.Tensor]:
    """Teacher forcing: `image` (B, S, S, 3) uint8 and `input_ids` (B, T), the caption without
    its last token -> `logits` (B, T, V), `attention` (B, T, N) and `gate` (B, T).

    Only the recurrence runs step by step; embeddings and the readout run on all steps at once.
    """
    features, keys = self.encode(inputs["image"], training=training)
    embedded = self.embedding(tf.cast(inputs["input_ids"], tf.int32))
    length = embedded.shape[1] or tf.shape(embedded)[1]  # static when known
    h, c = self.initial_state(features)

    def body(t, h, c, *arrays):
      alpha, beta, context = self._attend(h, features, keys)
      output, (h, c) = self.lstm(tf.concat([embedded[:, t], context], axis=-1), [h, c],
                                 training=training)
      values = (output, context, alpha, beta[:, 0])
      return [t + 1, h, c] + [a.write(t, v) for a, v in zip(arrays, values)]

    arrays = [tf.TensorArray(tf.float32, size=length) for _ in range(4)]
    _, _, _, *arrays = tf.while_loop(lambda t, *_: t < length, body,
                                     [tf.constant(0), h, c, *arrays], maximum_iterations=length)
    outputs, contexts, attention = (tf.transpose(a.stack(), [1, 0, 2]) for a in arrays[:3])
    return {"logits": self._readout(embedded, outputs, contexts, training),
            "attention": attention, "gate": tf.transpose(arrays[3].stack())}
