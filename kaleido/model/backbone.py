"""`KaleidoBackbone`: what every Kaleido-BERT task shares (paper sections 3.2 and 3.5).

The patch embedder (its patch CNN: ResNet-50 in the paper) turns the 55 kaleido patches into
features, and the encoder (text and patch embeddings, Transformer, pooler) reads them with the
text. The pre-training model and each downstream model are this backbone with their own heads
(kaleido.model.heads, composed in kaleido.model.kaleido_bert).
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras

from kaleido import config as config_lib
from kaleido.model import embeddings as embeddings_lib
from kaleido.model import encoder as encoder_lib
from kaleido.model import patch_embedder as patch_embedder_lib
from kaleido.patches import kaleido_grid

PATCH_EMBEDDER = "patch_embedder"
ENCODER = "encoder"


class KaleidoBackbone(tf_keras.layers.Layer):
  """{input_word_ids, input_mask, patches (B, 55, P, P, 3) uint8, patch_boxes} ->
  {sequence_output, pooled_output, patch_features}.

  Optional inputs: `patch_features` (B, 55, F) instead of `patches` (already embedded, e.g. once
  per image in evaluation), `blank_positions` (B2CM) and `attention_mask` (see KaleidoEncoder).
  """

  def __init__(self, patch_size: int = 64, patch_cnn: str = "resnet50",
               patch_cnn_trainable: bool = False, feature_size: int = 2048, **encoder_args):
    """The patch embedder's arguments, then the encoder's (`KaleidoEncoder`: vocab_size,
    hidden_size, num_layers, ...); `name`, `trainable` and `dtype` are this layer's."""
    super().__init__(**{key: encoder_args.pop(key) for key in ("name", "trainable", "dtype")
                        if key in encoder_args})
    self._config = dict(patch_size=patch_size, patch_cnn=patch_cnn,
                        patch_cnn_trainable=patch_cnn_trainable, feature_size=feature_size)
    self.patch_embedder = patch_embedder_lib.PatchEmbedder(
        patch_cnn, patch_size, feature_size, trainable=patch_cnn_trainable, name=PATCH_EMBEDDER)
    self.encoder = encoder_lib.KaleidoEncoder(**encoder_args, name=ENCODER)

  @classmethod
  def from_model_config(cls, model: config_lib.KaleidoBertConfig,
                        name: str = "backbone") -> KaleidoBackbone:
    encoder_args = {key: getattr(model, key) for key in encoder_lib.CONFIG_KEYS}
    return cls(model.patch_size, model.patch_cnn, model.patch_cnn_trainable, model.feature_size,
               **encoder_args, name=name)

  def get_config(self) -> dict:
    encoder = {key: value for key, value in self.encoder.get_config().items()
               if key in encoder_lib.CONFIG_KEYS}
    return {**super().get_config(), **self._config, **encoder}

  def call(self, inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    features = inputs.get("patch_features")
    if features is None:
      features = self.patch_embedder(inputs["patches"])
    features = tf.cast(features, tf.float32)  # cached features are float16
    encoder_inputs = {key: inputs[key] for key in ("input_word_ids", "input_mask", "patch_boxes",
                                                   "blank_positions", "attention_mask")
                      if key in inputs}
    return {**self.encoder({**encoder_inputs, "patch_features": features}),
            "patch_features": features}

  def get_embedding_table(self) -> tf.Variable:
    return self.encoder.get_embedding_table()


def input_specs(model: config_lib.KaleidoBertConfig) -> dict[str, tf.TensorSpec]:
  """Shapes and dtypes of the backbone's inputs for a batch of any size."""
  length, size, count = model.max_seq_length, model.patch_size, model.num_patches
  return {
      "input_word_ids": tf.TensorSpec([None, length], tf.int32),
      "input_mask": tf.TensorSpec([None, length], tf.int32),
      "patches": tf.TensorSpec([None, count, size, size, 3], tf.uint8),
      "patch_boxes": tf.TensorSpec([None, count, kaleido_grid.BOX_DIM], tf.float32),
  }


def pretrained_lr_rules(num_layers: int, multiplier: float, layer_decay: float,
                        pooler: bool = True, masked_lm: bool = True,
                        reinit_layers: int = 0) -> list[tuple[str, float]]:
  """Learning-rate rules (kaleido.training.optimization) for the variables a BERT checkpoint
  supplies: the pooler and MLM transform at `multiplier` (when the checkpoint supplies them:
  `pooler`, `masked_lm`), encoder layer i of L at multiplier * layer_decay ** (L - 1 - i), the
  text embeddings at multiplier * layer_decay ** L. The patch embeddings, the other heads and the
  top `reinit_layers` layers (not loaded) are not matched: they train at the full rate."""
  rules = []
  if pooler:
    rules.append((f"(^|/){ENCODER}/pooler_transform/", multiplier))
  if masked_lm:
    rules.append(("(^|/)masked_lm/", multiplier))
  rules += [(f"(^|/){ENCODER}/transformer/layer_{i}/",
             multiplier * layer_decay ** (num_layers - 1 - i))
            for i in range(num_layers - reinit_layers)]
  text_embeddings = "|".join(embeddings_lib.TEXT_EMBEDDING_LAYERS)
  rules.append((f"(^|/){ENCODER}/embeddings/({text_embeddings})/",
                multiplier * layer_decay ** num_layers))
  return rules
