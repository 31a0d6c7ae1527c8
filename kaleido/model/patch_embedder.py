"""Patch features: the patch CNN maps (..., P, P, 3) uint8 patches to (..., F) float32.

"resnet50" is the paper's extractor: Keras ResNet-50 without its top, global average pool
(F = 2,048), on caffe-style preprocessed pixels (`resnet50.preprocess_input`). "small" is a few
strided convolutions and a dense layer to F, for quick runs and tests. A frozen patch CNN (the
default) runs batch norm in inference mode and passes no gradient; a frozen ResNet-50 runs with
batch norm folded into its convolutions (kaleido.model.folded_resnet, same numbers, faster).
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras

from kaleido import config as config_lib
from kaleido.model import folded_resnet

RESNET50_FEATURES = 2048
SMALL_FILTERS = (32, 64, 128)


def _small_cnn(patch_size: int, feature_size: int) -> tf_keras.Model:
  """Strided convolutions whose pooled activations at every scale (colour and texture) are
  projected to `feature_size` and standardised. He-initialised and standardised, the features
  stay informative and of unit scale even when the CNN is frozen at its random start."""
  inputs = tf_keras.Input((patch_size, patch_size, 3), name="pixels")
  x, pooled = inputs, []
  for i, filters in enumerate(SMALL_FILTERS):
    x = tf_keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu",
                               kernel_initializer="he_normal", name=f"conv{i}")(x)
    pooled.append(tf_keras.layers.GlobalAveragePooling2D(name=f"pool{i}")(x))
  x = tf_keras.layers.Concatenate(name="scales")(pooled)
  x = tf_keras.layers.Dense(feature_size, kernel_initializer="he_normal", name="features")(x)
  features = tf_keras.layers.LayerNormalization(epsilon=1e-6, name="standardise")(x)
  return tf_keras.Model(inputs, features, name="small")


def build_cnn(cnn: str, patch_size: int, feature_size: int) -> tf_keras.Model:
  """(N, P, P, 3) preprocessed pixels -> (N, feature_size) features."""
  if cnn == "resnet50":
    if feature_size != RESNET50_FEATURES:
      raise ValueError(f"The resnet50 patch CNN has {RESNET50_FEATURES} features, "
                       f"not feature_size={feature_size}.")
    return tf_keras.applications.ResNet50(include_top=False, weights=None, pooling="avg",
                                          input_shape=(patch_size, patch_size, 3))
  if cnn == "small":
    return _small_cnn(patch_size, feature_size)
  raise ValueError(f"Unknown patch CNN {cnn!r}; expected one of {config_lib.CNNS}.")


def preprocess(cnn: str, pixels: tf.Tensor) -> tf.Tensor:
  """float32 pixels in [0, 255] -> the input the CNN `cnn` was trained on."""
  if cnn == "resnet50":
    return tf_keras.applications.resnet50.preprocess_input(pixels)
  return pixels / 127.5 - 1.0


class PatchEmbedder(tf_keras.layers.Layer):
  """(..., P, P, 3) uint8 patches -> (..., F) float32 features, any number of leading axes.

  The CNN starts random; pretrained weights (ImageNet ResNet-50, a word-pretrained small CNN)
  are loaded into `self.cnn` by the task's initialisation (kaleido.pretrained.resnet). Unless
  `trainable`, the CNN's weights are non-trainable, it runs with training=False and its output
  is cut from the gradient.
  """

  def __init__(self, cnn: str = "resnet50", patch_size: int = 64,
               feature_size: int = RESNET50_FEATURES, trainable: bool = False, **kwargs):
    super().__init__(**kwargs)
    self._cnn_name = cnn
    self._patch_size = patch_size
    self._feature_size = feature_size
    self.cnn = build_cnn(cnn, patch_size, feature_size)
    self.trainable = trainable  # set after building so it reaches every CNN layer

  def get_config(self) -> dict:
    return {**super().get_config(), "cnn": self._cnn_name,
            "patch_size": self._patch_size, "feature_size": self._feature_size}

  def call(self, patches: tf.Tensor, training: bool | None = None) -> tf.Tensor:
    size = self._patch_size
    pixels = preprocess(self._cnn_name,
                        tf.reshape(tf.cast(patches, tf.float32), [-1, size, size, 3]))
    if self.trainable:
      features = self.cnn(pixels, training=training)
    elif self._cnn_name == "resnet50":
      features = folded_resnet.folded_forward(self.cnn, pixels)
    else:
      features = self.cnn(pixels, training=False)
    leading = tf.shape(patches)[:-3]
    features = tf.reshape(tf.cast(features, tf.float32),
                          tf.concat([leading, [self._feature_size]], axis=0))
    return features if self.trainable else tf.stop_gradient(features)


def frozen_float32(cnn: str, patch_size: int, feature_size: int) -> PatchEmbedder:
  """A frozen embedder computing in float32 whatever the global precision policy (random
  weights): the feature cache's (kaleido.feature_cache), whose features must not depend on the
  precision a run trains in."""
  previous = tf_keras.mixed_precision.global_policy()
  tf_keras.mixed_precision.set_global_policy("float32")
  try:
    return PatchEmbedder(cnn, patch_size, feature_size, trainable=False,
                         name="float32_embedder")
  finally:
    tf_keras.mixed_precision.set_global_policy(previous)


def float32_copy(embedder: PatchEmbedder) -> PatchEmbedder:
  """`frozen_float32` with `embedder`'s weights."""
  config = embedder.get_config()
  copy = frozen_float32(config["cnn"], config["patch_size"], config["feature_size"])
  copy.cnn.set_weights(embedder.cnn.get_weights())
  return copy
