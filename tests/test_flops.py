"""FLOP counting from traced graphs, against hand-computed counts."""

import tensorflow as tf
import tf_keras

from kaleido.utils import flops


def test_dense_matmul_conv_and_einsum_counts():
  dense = tf_keras.layers.Dense(64)
  assert flops.function_flops(dense, tf.zeros([8, 10, 32])) == 2 * 8 * 10 * 32 * 64
  conv = tf_keras.layers.Conv2D(16, 3, padding="same")
  assert flops.function_flops(conv, tf.zeros([2, 8, 8, 3])) == 2 * 2 * 8 * 8 * 16 * 3 * 3 * 3

  def batched(a, b):
    return tf.matmul(a, b, transpose_b=True)

  assert flops.function_flops(batched, tf.zeros([4, 16, 32]), tf.zeros([4, 8, 32])) == (
      2 * 4 * 16 * 32 * 8)

  def attention_scores(q, k):
    return tf.einsum("bqhd,bkhd->bhqk", q, k)

  assert flops.function_flops(attention_scores, tf.zeros([2, 5, 3, 4]), tf.zeros([2, 7, 3, 4])) == (
      2 * 2 * 5 * 7 * 3 * 4)


def test_resnet50_matches_its_published_size():
  model = tf_keras.applications.ResNet50(include_top=False, weights=None, pooling="avg",
                                         input_shape=(224, 224, 3))

  def forward(images):
    return model(images, training=False)

  # ResNet-50 without its classifier: about 3.86 G multiply-adds at 224 x 224.
  assert 7.6e9 < flops.function_flops(forward, tf.zeros([1, 224, 224, 3])) < 7.8e9
