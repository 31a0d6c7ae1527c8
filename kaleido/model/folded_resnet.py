"""Inference forward pass of Keras' ResNet-50 with batch norm folded into the convolutions.

A frozen patch CNN runs batch norm with its moving statistics, an affine map per channel, so each
convolution + batch norm pair is one convolution with a scaled kernel and a shifted bias:
    kernel' = kernel * s,  bias' = (bias - mean) * s + beta,  s = gamma / sqrt(variance + eps).
That removes the 53 batch-norm passes over the activations (memory-bound on a CPU: the 912 patches
of a paper-size batch make tensors of up to 240 MB) and leaves conv + bias + ReLU, which oneDNN
fuses. The folded weights are computed from the Keras model's own variables at every call, so
restored or loaded weights are always the ones used, and the numbers match the Keras model's
`training=False` call to float32 round-off (tests/test_model.py); the speed-up is measured by
bench/bench_patch_cnn.py (BUILD_NOTES.md).
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras

# (stage, blocks, stride of the first block) of ResNet-50: conv2_x ... conv5_x.
RESNET50_STAGES = ((2, 3, 1), (3, 4, 2), (4, 6, 2), (5, 3, 2))


class _FoldedConvs:
  """The folded conv + batch norm units of a Keras ResNet-50, by unit name ("conv1",
  "conv2_block1_0", ...)."""

  def __init__(self, model: tf_keras.Model):
    self._layers = {layer.name: layer for layer in model.layers}

  def __call__(self, x: tf.Tensor, unit: str, stride: int, relu: bool,
               padding: str = "VALID") -> tf.Tensor:
    conv, norm = self._layers[f"{unit}_conv"], self._layers[f"{unit}_bn"]
    # Under a mixed policy the variables read in the compute dtype; fold in float32.
    kernel, bias, gamma, beta, mean, variance = (tf.cast(v, tf.float32) for v in (
        conv.kernel, conv.bias, norm.gamma, norm.beta, norm.moving_mean, norm.moving_variance))
    scale = gamma * tf.math.rsqrt(variance + norm.epsilon)
    kernel = tf.cast(kernel * scale, x.dtype)
    bias = tf.cast((bias - mean) * scale + beta, x.dtype)
    y = tf.nn.bias_add(tf.nn.conv2d(x, kernel, stride, padding), bias)
    return tf.nn.relu(y) if relu else y


def folded_forward(model: tf_keras.Model, pixels: tf.Tensor) -> tf.Tensor:
  """`model(pixels, training=False)` of a ResNet-50 without top with average pooling: (N, S, S,
  3) preprocessed pixels -> (N, 2048) features, computed in the model's compute dtype."""
  conv = _FoldedConvs(model)
  x = tf.cast(pixels, model.compute_dtype)
  x = tf.pad(x, [[0, 0], [3, 3], [3, 3], [0, 0]])
  x = conv(x, "conv1", stride=2, relu=True)
  x = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
  x = tf.nn.max_pool2d(x, 3, 2, "VALID")
  for stage, blocks, first_stride in RESNET50_STAGES:
    for block in range(1, blocks + 1):
      unit = f"conv{stage}_block{block}"
      stride = first_stride if block == 1 else 1
      shortcut = conv(x, f"{unit}_0", stride, relu=False) if block == 1 else x
      y = conv(x, f"{unit}_1", stride, relu=True)
      y = conv(y, f"{unit}_2", 1, relu=True, padding="SAME")
      y = conv(y, f"{unit}_3", 1, relu=False)
      x = tf.nn.relu(shortcut + y)
  return tf.reduce_mean(x, axis=[1, 2])
