"""Kaleido-BERT (paper sections 3.5-3.6): patch embedder, cross-modality encoder and heads.

The sequence is the L text positions followed by the 55 kaleido patches in level order; the
attention mask is the text input_mask followed by ones. Inputs and outputs of the pre-training
model are those of `kaleido.pretraining.features`. Both models built here name their shared
parts "patch_embedder" and "encoder", so `encoder_checkpoint` moves pre-trained weights into a
fine-tuning model. Heads compute in float32 (the vocabulary logits in the policy's dtype, then
cast), so logits and losses stay float32 under mixed precision.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras
from official.nlp.modeling import layers

from kaleido import config as config_lib
from kaleido.model import embeddings as embeddings_lib
from kaleido.model import patch_embedder as patch_embedder_lib
from kaleido.patches import kaleido_grid
from kaleido.pretraining import features

NUM_CLASSES_ITM = 2
NUM_ROTATIONS = 4
NUM_CAMOUFLAGE_SLOTS = 3 * 3  # the L3 patches
PATCH_EMBEDDER = "patch_embedder"
ENCODER = "encoder"


def gelu(x: tf.Tensor) -> tf.Tensor:
  """BERT's tanh-approximated GELU."""
  return tf_keras.activations.gelu(x, approximate=True)


def exact_gelu(x: tf.Tensor) -> tf.Tensor:
  """The erf GELU (Hugging Face's "gelu")."""
  return tf_keras.activations.gelu(x, approximate=False)


HIDDEN_ACTIVATIONS = {"gelu": exact_gelu, "gelu_approximate": gelu}  # config.HIDDEN_ACTS


class KaleidoEncoder(tf_keras.layers.Layer):
  """Embeddings, post-LN Transformer and tanh pooler over text + patches.

  Inputs as `KaleidoEmbeddings` plus input_mask (B, L); outputs {sequence_output (B, L + 55, H),
  pooled_output (B, H)}. The Transformer is a stack of tf-models-official
  `TransformerEncoderBlock`s (post-LN, GELU as `hidden_act`, LayerNorm epsilon 1e-12: the blocks
  `BertEncoderV2` stacks) rather than `BertEncoderV2` with dense inputs: BertEncoderV2 adds its
  absolute position and type embeddings to the dense inputs and normalises text and patches with
  one LayerNorm, while Kaleido-BERT locates a patch by its box and normalises it apart.
  """

  def __init__(self, model_config: config_lib.ModelConfig, **kwargs):
    super().__init__(**kwargs)
    config = model_config
    self._num_patches = config.num_patches
    self._text_length = config.max_seq_length
    self._pooling = config.pooling
    self.embeddings = embeddings_lib.KaleidoEmbeddings(
        config.vocab_size, config.hidden_size, config.max_seq_length,
        dropout_rate=config.dropout_rate, initializer_range=config.initializer_range,
        name="embeddings")
    self._attention_mask = layers.SelfAttentionMask(name="self_attention_mask")
    self.transformer_layers = [
        layers.TransformerEncoderBlock(
            num_attention_heads=config.num_heads, inner_dim=config.intermediate_size,
            inner_activation=HIDDEN_ACTIVATIONS[config.hidden_act],
            output_dropout=config.dropout_rate,
            attention_dropout=config.attention_dropout_rate, norm_first=False,
            kernel_initializer=embeddings_lib.initializer(config.initializer_range),
            name=f"transformer/layer_{i}")
        for i in range(config.num_layers)]
    self.pooler = tf_keras.layers.Dense(
        config.hidden_size, activation="tanh",
        kernel_initializer=embeddings_lib.initializer(config.initializer_range),
        name="pooler_transform")

  def call(self, inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """An optional `attention_mask` (B, L + 55, L + 55), 1 where a query position may attend to
    a key position, replaces the default (every position sees the real text and all patches)."""
    x = self.embeddings(inputs)
    if "attention_mask" in inputs:
      attention_mask = tf.cast(inputs["attention_mask"], x.dtype)
    else:
      text_mask = inputs["input_mask"]
      patch_mask = tf.ones([tf.shape(text_mask)[0], self._num_patches], text_mask.dtype)
      attention_mask = self._attention_mask(x, tf.concat([text_mask, patch_mask], axis=1))
    for layer in self.transformer_layers:
      x = layer([x, attention_mask])
    return {"sequence_output": x,
            "pooled_output": self.pooler(self._pool(x, inputs["input_mask"]))}

  def _pool(self, sequence: tf.Tensor, input_mask: tf.Tensor) -> tf.Tensor:
    """(B, L + 55, H) -> (B, H): the [CLS] state, or the mean of the real text states."""
    if self._pooling == "cls":
      return sequence[:, 0]
    weights = tf.cast(input_mask, sequence.dtype)[:, :, tf.newaxis]
    text = sequence[:, :self._text_length]
    return tf.reduce_sum(text * weights, axis=1) / tf.maximum(
        tf.reduce_sum(weights, axis=1), tf.cast(1.0, sequence.dtype))

  def get_embedding_table(self) -> tf.Variable:
    return self.embeddings.word_embeddings.embeddings


def pretrained_lr_rules(num_layers: int, multiplier: float,
                        layer_decay: float) -> list[tuple[str, float]]:
  """Learning-rate rules (kaleido.training.optimization) for the variables a BERT checkpoint
  supplies: the pooler and MLM transform at `multiplier`, encoder layer i of L at
  multiplier * layer_decay ** (L - 1 - i), the text embeddings at multiplier * layer_decay ** L.
  The patch embeddings and the other heads are not matched: they train at the full rate."""
  rules = [(f"^{ENCODER}/pooler_transform/", multiplier), ("^heads/masked_lm/", multiplier)]
  rules += [(f"^{ENCODER}/transformer/layer_{i}/",
             multiplier * layer_decay ** (num_layers - 1 - i)) for i in range(num_layers)]
  text_embeddings = "|".join(embeddings_lib.TEXT_EMBEDDING_LAYERS)
  rules.append((f"^{ENCODER}/embeddings/({text_embeddings})/",
                multiplier * layer_decay ** num_layers))
  return rules


def _head(model_config: config_lib.ModelConfig, units: int, name: str,
          use_bias: bool = True) -> tf_keras.layers.Dense:
  """A float32 linear head."""
  return tf_keras.layers.Dense(
      units, use_bias=use_bias, dtype=tf.float32, name=name,
      kernel_initializer=embeddings_lib.initializer(model_config.initializer_range))


class PretrainingHeads(tf_keras.layers.Layer):
  """{sequence_output, pooled_output, masked_lm_positions, grey_positions, blank_positions} ->
  the contract's logits and feature predictions, float32."""

  def __init__(self, model_config: config_lib.ModelConfig, embedding_table: tf.Variable,
               **kwargs):
    super().__init__(**kwargs)
    self._text_length = model_config.max_seq_length
    self._hidden_size = model_config.hidden_size
    self.masked_lm = layers.MaskedLM(
        embedding_table, activation=HIDDEN_ACTIVATIONS[model_config.hidden_act],
        initializer=embeddings_lib.initializer(model_config.initializer_range), name="masked_lm")
    self.itm = _head(model_config, NUM_CLASSES_ITM, "itm")
    self.rr = _head(model_config, NUM_ROTATIONS, "rr")
    self.jps = _head(model_config, len(features.JIGSAW_PERMUTATIONS), "jps")
    self.cp = _head(model_config, NUM_CAMOUFLAGE_SLOTS, "cp")
    self.g2cm = _head(model_config, model_config.feature_size, "g2cm", use_bias=False)
    self.b2cm = _head(model_config, model_config.feature_size, "b2cm", use_bias=False)

  def call(self, inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    sequence = inputs["sequence_output"]
    patches = sequence[:, self._text_length:]
    mlm_logits = self.masked_lm(sequence, masked_positions=inputs["masked_lm_positions"])
    return {
        "mlm_logits": tf.cast(mlm_logits, tf.float32),
        "itm_logits": self.itm(inputs["pooled_output"]),
        "rr_logits": self.rr(self._level(patches, 1)),
        "jps_logits": self.jps(self._level(patches, 2)),
        "cp_logits": self.cp(self._level(patches, 3)),
        "g2cm_predictions": self.g2cm(tf.gather(patches, inputs["grey_positions"], batch_dims=1)),
        "b2cm_predictions": self.b2cm(tf.gather(patches, inputs["blank_positions"],
                                                batch_dims=1)),
    }

  def _level(self, patches: tf.Tensor, level: int) -> tf.Tensor:
    """(B, 55, H) -> (B, n*n*H): the hidden states of level n, flattened in patch order."""
    return tf.reshape(patches[:, kaleido_grid.level_slice(level)],
                      [-1, level * level * self._hidden_size])


def encoder_inputs(model_config: config_lib.ModelConfig) -> dict[str, tf.Tensor]:
  """Keras inputs of the encoder model: text, patches and boxes."""
  length, size, count = (model_config.max_seq_length, model_config.patch_size,
                         model_config.num_patches)
  return {
      "input_word_ids": tf_keras.Input((length,), dtype=tf.int32, name="input_word_ids"),
      "input_mask": tf_keras.Input((length,), dtype=tf.int32, name="input_mask"),
      "patches": tf_keras.Input((count, size, size, 3), dtype=tf.uint8, name="patches"),
      "patch_boxes": tf_keras.Input((count, kaleido_grid.BOX_DIM), dtype=tf.float32,
                                    name="patch_boxes"),
  }


def pretraining_inputs(model_config: config_lib.ModelConfig,
                       task_config: config_lib.TaskConfig) -> dict[str, tf.Tensor]:
  """Keras inputs of the pre-training model: the contract's keys that are not labels."""
  size = model_config.patch_size
  return {
      **encoder_inputs(model_config),
      "blank_positions": tf_keras.Input((task_config.num_b2cm,), dtype=tf.int32,
                                        name="blank_positions"),
      "grey_positions": tf_keras.Input((task_config.num_g2cm,), dtype=tf.int32,
                                       name="grey_positions"),
      "grey_targets": tf_keras.Input((task_config.num_g2cm, size, size, 3), dtype=tf.uint8,
                                     name="grey_targets"),
      "masked_lm_positions": tf_keras.Input((task_config.max_predictions,), dtype=tf.int32,
                                            name="masked_lm_positions"),
  }


def _text_and_boxes(inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
  return {key: inputs[key] for key in ("input_word_ids", "input_mask", "patch_boxes")}


def build_encoder_model(model_config: config_lib.ModelConfig,
                        backbone_weights: str | None = None) -> tf_keras.Model:
  """{input_word_ids, input_mask, patches, patch_boxes} -> {sequence_output, pooled_output}.

  The model for fine-tuning; load pre-trained weights with `encoder_checkpoint`.
  """
  inputs = encoder_inputs(model_config)
  embedder = patch_embedder_lib.from_model_config(model_config, backbone_weights,
                                                  name=PATCH_EMBEDDER)
  encoder = KaleidoEncoder(model_config, name=ENCODER)
  outputs = encoder({**_text_and_boxes(inputs), "patch_features": embedder(inputs["patches"])})
  return tf_keras.Model(inputs, outputs, name="kaleido_bert_encoder")


def build_pretraining_model(model_config: config_lib.ModelConfig,
                            task_config: config_lib.TaskConfig,
                            backbone_weights: str | None = None) -> tf_keras.Model:
  """The pre-training model: contract batch (labels are ignored) -> contract output dict.

  The patch embedder runs once on the 55 patches and the grey targets together. G2CM targets are
  the features of grey_targets, B2CM targets those of the unblanked patches at blank_positions;
  both are cut from the gradient. Blanking happens only when B2CM is enabled.
  """
  inputs = pretraining_inputs(model_config, task_config)
  embedder = patch_embedder_lib.from_model_config(model_config, backbone_weights,
                                                  name=PATCH_EMBEDDER)
  encoder = KaleidoEncoder(model_config, name=ENCODER)
  all_patches = tf_keras.layers.Concatenate(axis=1, name="all_patches")(
      [inputs["patches"], inputs["grey_targets"]])
  all_features = embedder(all_patches)
  patch_features = all_features[:, :model_config.num_patches]
  encoder_args = {**_text_and_boxes(inputs), "patch_features": patch_features}
  if task_config.is_enabled("b2cm"):
    encoder_args["blank_positions"] = inputs["blank_positions"]
  encoded = encoder(encoder_args)
  heads = PretrainingHeads(model_config, encoder.get_embedding_table(), name="heads")
  outputs = heads({**encoded, **{key: inputs[key] for key in (
      "masked_lm_positions", "grey_positions", "blank_positions")}})
  outputs["g2cm_targets"] = tf.stop_gradient(all_features[:, model_config.num_patches:])
  outputs["b2cm_targets"] = tf.stop_gradient(
      tf.gather(patch_features, inputs["blank_positions"], batch_dims=1))
  return tf_keras.Model(inputs, outputs, name="kaleido_bert_pretraining")


def encoder_checkpoint(model: tf_keras.Model) -> tf.train.Checkpoint:
  """The patch embedder and encoder of either model, as a checkpoint the other can restore."""
  return tf.train.Checkpoint(patch_embedder=model.get_layer(PATCH_EMBEDDER),
                             encoder=model.get_layer(ENCODER))
