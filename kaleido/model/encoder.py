"""The cross-modality Transformer of Kaleido-BERT (paper section 3.5) over text + kaleido patches.

The sequence is the L text positions followed by the 55 kaleido patches in level order; by default
every position sees the real text and all patches (the original release's mask). Blocks are
tf-models-official `TransformerEncoderBlock`s (post-LN, LayerNorm epsilon 1e-12: the blocks
`BertEncoderV2` stacks) rather than `BertEncoderV2` with dense inputs: BertEncoderV2 adds its own
absolute position and type embeddings to dense inputs and normalises text and patches with one
LayerNorm, while Kaleido-BERT locates a patch by its box and normalises it apart.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras
from official.nlp.modeling import layers

from kaleido.model import embeddings as embeddings_lib
from kaleido.patches import kaleido_grid


def gelu(x: tf.Tensor) -> tf.Tensor:
  """BERT's tanh-approximated GELU."""
  return tf_keras.activations.gelu(x, approximate=True)


def exact_gelu(x: tf.Tensor) -> tf.Tensor:
  """The erf GELU (Hugging Face's "gelu")."""
  return tf_keras.activations.gelu(x, approximate=False)


HIDDEN_ACTIVATIONS = {"gelu": exact_gelu, "gelu_approximate": gelu}  # config.HIDDEN_ACTS
# The constructor arguments, as named in config.KaleidoBertConfig.
CONFIG_KEYS = ("vocab_size", "hidden_size", "num_layers", "num_heads", "intermediate_size",
               "max_seq_length", "num_patches", "dropout_rate", "attention_dropout_rate",
               "initializer_range", "hidden_act", "pooling", "kaleido_levels", "fusion_layer")


class KaleidoEncoder(tf_keras.layers.Layer):
  """Embeddings, post-LN Transformer and tanh pooler over text + patches.

  Inputs: input_word_ids (B, L), input_mask (B, L), patch_features (B, 55, F), patch_boxes
  (B, 55, 5), optional blank_positions (B, K) and attention_mask (B, L + 55, L + 55). Patches of
  levels outside `kaleido_levels` are left out of the default attention mask. The first
  `fusion_layer` blocks see within each modality only (text text, patches patches), the others
  across both, as the mask allows (0, the paper's single stream: every block across). Outputs:
  sequence_output (B, L + 55, H) and pooled_output (B, H), the tanh pooler on the [CLS] state or
  on the mean of the real text states (`pooling`).
  """

  def __init__(self, vocab_size: int, hidden_size: int = 768, num_layers: int = 12,
               num_heads: int = 12, intermediate_size: int = 3072, max_seq_length: int = 64,
               num_patches: int = kaleido_grid.NUM_PATCHES, dropout_rate: float = 0.1,
               attention_dropout_rate: float = 0.1, initializer_range: float = 0.02,
               hidden_act: str = "gelu_approximate", pooling: str = "cls",
               kaleido_levels: tuple[int, ...] = kaleido_grid.LEVELS, fusion_layer: int = 0,
               **kwargs):
    super().__init__(**kwargs)
    arguments = locals()
    self._config = {key: arguments[key] for key in CONFIG_KEYS}
    self._config["kaleido_levels"] = tuple(kaleido_levels)
    self._visible_patches = kaleido_grid.visible_patches(kaleido_levels)
    self.embeddings = embeddings_lib.KaleidoEmbeddings(
        vocab_size, hidden_size, max_seq_length, dropout_rate=dropout_rate,
        initializer_range=initializer_range, name="embeddings")
    self._attention_mask = layers.SelfAttentionMask(name="self_attention_mask")
    self.transformer_layers = [
        layers.TransformerEncoderBlock(
            num_attention_heads=num_heads, inner_dim=intermediate_size,
            inner_activation=HIDDEN_ACTIVATIONS[hidden_act], output_dropout=dropout_rate,
            attention_dropout=attention_dropout_rate, norm_first=False,
            kernel_initializer=embeddings_lib.initializer(initializer_range),
            name=f"transformer/layer_{i}")
        for i in range(num_layers)]
    self.pooler = tf_keras.layers.Dense(
        hidden_size, activation="tanh",
        kernel_initializer=embeddings_lib.initializer(initializer_range), name="pooler_transform")

  def get_config(self) -> dict:
    return {**super().get_config(), **self._config}

  @property
  def num_visible_patches(self) -> int:
    """How many of the 55 patches the default attention mask lets every position see."""
    return int(sum(self._visible_patches))

  def call(self, inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    x = self.embeddings(inputs)
    for layer, attention_mask in zip(self.transformer_layers, self._layer_masks(inputs, x)):
      x = layer([x, attention_mask])
    return {"sequence_output": x,
            "pooled_output": self.pooler(self._pool(x, inputs["input_mask"]))}

  def _mask(self, inputs: dict[str, tf.Tensor], x: tf.Tensor) -> tf.Tensor:
    """(B, S, S) attention mask: the inputs' own, or real text and visible patches."""
    if "attention_mask" in inputs:
      return tf.cast(inputs["attention_mask"], x.dtype)
    text_mask = inputs["input_mask"]
    patch_mask = tf.tile(tf.constant(self._visible_patches, text_mask.dtype)[tf.newaxis],
                         [tf.shape(text_mask)[0], 1])
    return self._attention_mask(x, tf.concat([text_mask, patch_mask], axis=1))

  def _layer_masks(self, inputs: dict[str, tf.Tensor], x: tf.Tensor) -> list[tf.Tensor]:
    """Each block's (B, S, S) attention mask: `_mask`, within each modality only in the first
    `fusion_layer` blocks."""
    mask = self._mask(inputs, x)
    fusion_layer = self._config["fusion_layer"]
    if not fusion_layer:
      return [mask] * len(self.transformer_layers)
    within = mask * same_modality_mask(tf.shape(inputs["input_mask"])[1],
                                       len(self._visible_patches), mask.dtype)
    return [within] * fusion_layer + [mask] * (len(self.transformer_layers) - fusion_layer)

  def attention_probabilities(self, inputs: dict[str, tf.Tensor]) -> list[tf.Tensor]:
    """Per layer, the (B, heads, S, S) attention probabilities (query rows, key columns) of an
    inference pass over `inputs`: a diagnostic, which recomputes each layer's attention."""
    if not self.built:
      self(inputs)
    x = self.embeddings(inputs, training=False)
    probabilities = []
    for layer, attention_mask in zip(self.transformer_layers, self._layer_masks(inputs, x)):
      _, scores = layer._attention_layer(  # pylint: disable=protected-access
          query=x, value=x, key=x, attention_mask=attention_mask, return_attention_scores=True,
          training=False)
      probabilities.append(scores)
      x = layer([x, attention_mask], training=False)
    return probabilities

  def _pool(self, sequence: tf.Tensor, input_mask: tf.Tensor) -> tf.Tensor:
    """(B, L + 55, H) -> (B, H): the [CLS] state, or the mean of the real text states."""
    if self._config["pooling"] == "cls":
      return sequence[:, 0]
    return masked_mean(sequence[:, :tf.shape(input_mask)[1]], input_mask)

  def get_embedding_table(self) -> tf.Variable:
    return self.embeddings.word_embeddings.embeddings


def same_modality_mask(text_length: int | tf.Tensor, num_patches: int,
                       dtype: tf.DType = tf.float32) -> tf.Tensor:
  """(1, L + P, L + P): 1 where query and key are both text or both patches."""
  is_patch = tf.concat([tf.zeros([text_length], tf.int32), tf.ones([num_patches], tf.int32)], 0)
  return tf.cast(tf.equal(is_patch[:, tf.newaxis], is_patch[tf.newaxis, :]), dtype)[tf.newaxis]


def masked_mean(states: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
  """(B, N, H) states, (B, N) 0/1 weights -> (B, H) mean of the weighted states (0 if none)."""
  weights = tf.cast(weights, states.dtype)[:, :, tf.newaxis]
  return tf.reduce_sum(states * weights, axis=1) / tf.maximum(
      tf.reduce_sum(weights, axis=1), tf.cast(1.0, states.dtype))
