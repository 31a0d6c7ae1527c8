"""Kaleido-BERT's task models: the backbone (kaleido.model.backbone) with each task's heads.

- `KaleidoPretrainer` (paper 3.4-3.6): the seven pre-training heads; its inputs and outputs are
  the contract of kaleido.dataloaders.features.
- `KaleidoMatcher` (4.2 ITR/TIR): the ITM head on the pooled output.
- `KaleidoClassifier` (4.2 category, subcategory): a dense layer on the pooled output.
- `KaleidoCaptioner` (4.2 captioning): the tied MLM decoder at every text position, under the
  UniLM sequence-to-sequence mask (autoregressive) or the full mask (the paper's one-shot).

Checkpoints hold `model/backbone/...` and the heads by name (`model/heads/...` for pre-training),
so a fine-tuning model restores the backbone and the heads it shares from a pre-training
checkpoint (`pretraining_checkpoint_objects`).
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras

from kaleido import config as config_lib
from kaleido.model import backbone as backbone_lib
from kaleido.model import heads as heads_lib
from kaleido.patches import kaleido_grid

AUTOREGRESSIVE, ONE_SHOT = config_lib.CAPTION_MODES
ENCODER_KEYS = ("input_word_ids", "input_mask", "patches", "patch_boxes")


def attention_mask(input_mask: tf.Tensor, visible_patches, causal: bool,
                   cross_modal: bool) -> tf.Tensor:
  """(B, L) text mask -> (B, L + P, L + P) mask: 1 where a query position may see a key position.

  Rows are queries, columns keys, in the encoder's order (L text positions, then P patches).
  `visible_patches` (P,) is 1 for the patches the encoder sees (kaleido_grid.visible_patches).
  Text position i sees the real text positions (only j <= i when `causal`) and, when
  `cross_modal`, the visible patches; patches see only the visible patches.
  """
  input_mask = tf.cast(input_mask, tf.int32)
  batch, length = tf.shape(input_mask)[0], tf.shape(input_mask)[1]
  visible = tf.constant(visible_patches, tf.int32)
  num_patches = visible.shape[0]
  text_to_text = tf.tile(input_mask[:, tf.newaxis, :], [1, length, 1])
  if causal:
    text_to_text *= tf.linalg.band_part(tf.ones([length, length], tf.int32), -1, 0)[tf.newaxis]
  patch_keys = tf.tile(visible[tf.newaxis, tf.newaxis], [batch, length, 1]) * int(cross_modal)
  text_rows = tf.concat([text_to_text, patch_keys], axis=2)
  patch_rows = tf.concat([tf.zeros([batch, num_patches, length], tf.int32),
                          tf.tile(visible[tf.newaxis, tf.newaxis], [batch, num_patches, 1])],
                         axis=2)
  return tf.concat([text_rows, patch_rows], axis=1)


def unilm_attention_mask(input_mask: tf.Tensor, visible_patches) -> tf.Tensor:
  """The UniLM sequence-to-sequence mask of captioning: causal text that sees the patches."""
  return attention_mask(input_mask, visible_patches, causal=True, cross_modal=True)


def unimodal_attention_mask(input_mask: tf.Tensor, visible_patches) -> tf.Tensor:
  """Text and patches each see only themselves: one encoder pass gives a text-only and an
  image-only encoding (the ITC pass)."""
  return attention_mask(input_mask, visible_patches, causal=False, cross_modal=False)


def build_symbolically(layer: tf_keras.layers.Layer, specs: dict[str, tf.TensorSpec]) -> None:
  """Creates `layer`'s variables with one symbolic call, as a functional model would (the order
  in which layers first run fixes their random initial weights and dropout seeds)."""
  layer({key: tf_keras.Input(spec.shape[1:], dtype=spec.dtype, name=key)
         for key, spec in specs.items()})


def _built_backbone(model: config_lib.KaleidoBertConfig) -> backbone_lib.KaleidoBackbone:
  backbone = backbone_lib.KaleidoBackbone.from_model_config(model)
  build_symbolically(backbone, backbone_lib.input_specs(model))
  return backbone


class TaskModel(tf_keras.Model):
  """A backbone with heads; `input_keys` are the batch keys `call` reads."""

  input_keys: tuple[str, ...] = ENCODER_KEYS

  def __init__(self, backbone: backbone_lib.KaleidoBackbone, **kwargs):
    super().__init__(**kwargs)
    self.backbone = backbone

  def encode(self, inputs: dict[str, tf.Tensor], **extra: tf.Tensor) -> dict[str, tf.Tensor]:
    """The backbone on the encoder inputs (patches, or their cached `patch_features`)."""
    keys = ENCODER_KEYS + ("patch_features",)
    return self.backbone({**{key: inputs[key] for key in keys if key in inputs}, **extra})

  def pretraining_heads(self) -> dict[str, tf_keras.layers.Layer]:
    """{name: head} of the heads this model shares with a pre-training checkpoint (which holds
    them as model/heads/<name>); none for a classifier."""
    return {}


class KaleidoPretrainer(TaskModel):
  """Contract batch (labels ignored) -> contract outputs. The patch embedder runs once on the 55
  patches and the grey targets together (or their cached features are read); G2CM targets are
  the features of grey_targets, B2CM targets those of the unblanked patches at blank_positions,
  both cut from the gradient. Blanking happens only when B2CM is enabled.

  The restored inputs are the text with its masked tokens restored and the patch features with
  the greyed ones restored and none blanked (the camouflaged L3 patch stays). With a contrastive
  head (the itc loss), a second encoder pass under `unimodal_attention_mask` reads them and the
  head embeds its text and image halves. With `itm_unmasked`, ITM reads the pooled output of a
  joint pass over them instead of the masked pass's. With `restored_outputs` they are outputs
  too (`restored_word_ids`, `restored_patch_features`: what in-step ITM groups are made of).
  A call with `matching_only` computes only what ITM and ITC read: the masked pass (ITM's head
  alone) only when ITM reads it, none of the other heads or their targets.
  """

  PRETRAINING_KEYS = ENCODER_KEYS + ("blank_positions", "grey_positions", "grey_targets",
                                     "masked_lm_positions")
  RESTORE_KEYS = ("masked_lm_ids", "masked_lm_weights")

  def __init__(self, backbone: backbone_lib.KaleidoBackbone, heads: heads_lib.PretrainingHeads,
               num_patches: int = kaleido_grid.NUM_PATCHES, blank: bool = True,
               kaleido_levels=kaleido_grid.LEVELS, itm_unmasked: bool = False,
               restored_outputs: bool = False, **kwargs):
    super().__init__(backbone, **kwargs)
    self.heads = heads
    self._num_patches = num_patches
    self._blank = blank
    self._itm_unmasked = itm_unmasked
    self._restored_outputs = restored_outputs
    self._visible_patches = kaleido_grid.visible_patches(kaleido_levels)

  @property
  def _restores(self) -> bool:
    """Whether a call builds the restored inputs."""
    return self.heads.contrastive is not None or self._itm_unmasked or self._restored_outputs

  @property
  def input_keys(self) -> tuple[str, ...]:
    return self.PRETRAINING_KEYS + (self.RESTORE_KEYS if self._restores else ())

  def itm_logits(self, inputs: dict[str, tf.Tensor], training=None) -> tf.Tensor:
    """(B, 2) ITM logits of one joint pass over {text, patch_features, patch_boxes} pairs
    (outside `call`: `training` as the caller's)."""
    return self.heads.itm(self.backbone(inputs, training=training)["pooled_output"])

  def _features(self, inputs: dict[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
    """(patch features, G2CM target features): cached, or the embedder on the pixels of both
    in one pass."""
    if "patch_features" in inputs:
      return (tf.cast(inputs["patch_features"], tf.float32),
              tf.cast(inputs["grey_target_features"], tf.float32))
    all_features = self.backbone.patch_embedder(
        tf.concat([inputs["patches"], inputs["grey_targets"]], axis=1))
    return all_features[:, :self._num_patches], all_features[:, self._num_patches:]

  def _masked_pass(self, inputs: dict[str, tf.Tensor],
                   patch_features: tf.Tensor) -> dict[str, tf.Tensor]:
    """The backbone on the masked text and patches (blanked ones too when blanking is on)."""
    extra = {"patch_features": patch_features}
    if self._blank:
      extra["blank_positions"] = inputs["blank_positions"]
    return self.encode({key: inputs[key] for key in ("input_word_ids", "input_mask",
                                                     "patch_boxes")}, **extra)

  def call(self, inputs: dict[str, tf.Tensor],
           matching_only: bool = False) -> dict[str, tf.Tensor]:
    patch_features, grey_features = self._features(inputs)
    if not matching_only:
      outputs = self.heads({**self._masked_pass(inputs, patch_features), **{
          key: inputs[key] for key in ("masked_lm_positions", "grey_positions",
                                       "blank_positions")}})
      outputs["g2cm_targets"] = tf.stop_gradient(grey_features)
      outputs["b2cm_targets"] = tf.stop_gradient(
          tf.gather(patch_features, inputs["blank_positions"], batch_dims=1))
    elif self._itm_unmasked or self._restored_outputs:
      outputs = {}  # ITM reads the restored pass or in-step groups
    else:
      outputs = {"itm_logits": self.heads.itm(
          self._masked_pass(inputs, patch_features)["pooled_output"])}
    if not self._restores:
      return outputs
    restored = {"input_word_ids": restore_masked_tokens(inputs),
                "input_mask": inputs["input_mask"], "patch_boxes": inputs["patch_boxes"],
                "patch_features": scatter_rows(patch_features, inputs["grey_positions"],
                                               grey_features)}
    if self._restored_outputs:
      outputs["restored_word_ids"] = restored["input_word_ids"]
      outputs["restored_patch_features"] = restored["patch_features"]
    if self._itm_unmasked:
      outputs["itm_logits"] = self.heads.itm(self.backbone(restored)["pooled_output"])
    if self.heads.contrastive is not None:
      outputs.update(contrastive_embeddings(self.backbone, self.heads.contrastive,
                                            self._visible_patches, restored))
    return outputs

  def pretraining_heads(self) -> dict[str, tf_keras.layers.Layer]:
    heads = {name: getattr(self.heads, name) for name in (
        "masked_lm", "itm", "rr", "jps", "cp", "g2cm", "b2cm")}
    if self.heads.contrastive is not None:
      heads["contrastive"] = self.heads.contrastive
    return heads


def contrastive_embeddings(backbone: backbone_lib.KaleidoBackbone,
                           head: heads_lib.ContrastiveHead, visible_patches,
                           inputs: dict[str, tf.Tensor], training=None) -> dict[str, tf.Tensor]:
  """The ITC head's outputs on one encoder pass under `unimodal_attention_mask` over
  {input_word_ids, input_mask, patch_boxes, patch_features}: itc_text depends on the text
  alone, itc_image on the patches alone (either may be a placeholder when only the other is
  wanted)."""
  unimodal = backbone({**inputs, "attention_mask": unimodal_attention_mask(
      inputs["input_mask"], visible_patches)}, training=training)
  return head({"sequence_output": unimodal["sequence_output"],
               "input_mask": inputs["input_mask"]}, training=training)


def scatter_rows(values: tf.Tensor, positions: tf.Tensor, updates: tf.Tensor) -> tf.Tensor:
  """(B, N, ...) values with values[b, positions[b, k]] <- updates[b, k]; positions (B, K)."""
  rows = tf.broadcast_to(tf.range(tf.shape(positions)[0])[:, tf.newaxis], tf.shape(positions))
  return tf.tensor_scatter_nd_update(values, tf.stack([rows, positions], axis=-1), updates)


def restore_masked_tokens(inputs: dict[str, tf.Tensor]) -> tf.Tensor:
  """input_word_ids with the original token back at every masked position. Padding entries
  point at position 0 ([CLS], never masked); the masked_lm_weights are not read, since ITM
  negatives have theirs zeroed but their text masked like any other."""
  word_ids = inputs["input_word_ids"]
  positions = inputs["masked_lm_positions"]
  current = tf.gather(word_ids, positions, batch_dims=1)
  original = tf.where(positions > 0, inputs["masked_lm_ids"], current)
  return scatter_rows(word_ids, positions, original)


class KaleidoMatcher(TaskModel):
  """{text, patches, boxes} -> {itm_logits (B, 2)}: whether text and image belong together.

  With a contrastive head, also the ITC outputs (itc_text, itc_image, itc_logit_scale) of a
  unimodal pass over the same text and patch features: the independent embeddings of the first
  search stage, whose ITM scores re-rank.
  """

  def __init__(self, backbone: backbone_lib.KaleidoBackbone, itm: tf_keras.layers.Dense,
               contrastive: heads_lib.ContrastiveHead | None = None,
               kaleido_levels=kaleido_grid.LEVELS, **kwargs):
    super().__init__(backbone, **kwargs)
    self.itm = itm
    self.contrastive = contrastive
    self.visible_patches = kaleido_grid.visible_patches(kaleido_levels)

  def pretraining_heads(self) -> dict[str, tf_keras.layers.Layer]:
    heads = {"itm": self.itm}
    if self.contrastive is not None:
      heads["contrastive"] = self.contrastive
    return heads

  def call(self, inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    encoded = self.encode(inputs)
    outputs = {"itm_logits": self.itm(encoded["pooled_output"])}
    if self.contrastive is not None:
      outputs.update(self.contrastive_outputs({**inputs,
                                               "patch_features": encoded["patch_features"]}))
    return outputs

  def pair_features(self, inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    """`inputs` with the float32 patch features in place of the patches (embedded once, so
    pairs made of them in any combination need no second embedding)."""
    features = inputs.get("patch_features")
    if features is None:
      features = self.backbone.patch_embedder(inputs["patches"])
    return {**{key: inputs[key] for key in ("input_word_ids", "input_mask", "patch_boxes")},
            "patch_features": tf.cast(features, tf.float32)}

  def itm_logits(self, inputs: dict[str, tf.Tensor], training=None) -> tf.Tensor:
    """(B, 2) ITM logits of one joint pass over {text, patch_features, patch_boxes} pairs
    (outside `call`: `training` as the caller's)."""
    return self.itm(self.backbone(inputs, training=training)["pooled_output"])

  def contrastive_outputs(self, inputs: dict[str, tf.Tensor],
                          training=None) -> dict[str, tf.Tensor]:
    """The ITC head's outputs (itc_text, itc_image, itc_logit_scale) on the unimodal pass over
    {text, patch_features, patch_boxes}."""
    return contrastive_embeddings(self.backbone, self.contrastive, self.visible_patches,
                                  {key: inputs[key] for key in ("input_word_ids", "input_mask",
                                                                "patch_boxes", "patch_features")},
                                  training)


class KaleidoClassifier(TaskModel):
  """{text, patches, boxes} -> {logits (B, num_classes)} from the pooled output."""

  def __init__(self, backbone: backbone_lib.KaleidoBackbone,
               classifier: heads_lib.ClassificationHead, **kwargs):
    super().__init__(backbone, **kwargs)
    self.classifier = classifier

  def call(self, inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    return {"logits": self.classifier(self.encode(inputs)["pooled_output"])}


class KaleidoCaptioner(TaskModel):
  """{text, patches, boxes} -> {lm_logits (B, L, V)}: the tied MLM decoder at every text
  position. Autoregressive: position i sees the text up to i and all patches (UniLM mask), and
  is trained to predict token i + 1; one-shot: the default mask over `[CLS] [MASK] ...`."""

  def __init__(self, backbone: backbone_lib.KaleidoBackbone, masked_lm: tf_keras.layers.Layer,
               mode: str = AUTOREGRESSIVE, kaleido_levels=kaleido_grid.LEVELS, **kwargs):
    super().__init__(backbone, **kwargs)
    self.masked_lm = masked_lm
    self._mode = mode
    self._visible_patches = kaleido_grid.visible_patches(kaleido_levels)

  def pretraining_heads(self) -> dict[str, tf_keras.layers.Layer]:
    return {"masked_lm": self.masked_lm}

  def call(self, inputs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    extra = {}
    if self._mode == AUTOREGRESSIVE:
      extra["attention_mask"] = unilm_attention_mask(inputs["input_mask"],
                                                     self._visible_patches)
    sequence = self.encode(inputs, **extra)["sequence_output"]
    word_ids = inputs["input_word_ids"]
    positions = tf.broadcast_to(tf.range(tf.shape(word_ids)[1], dtype=tf.int32)[tf.newaxis],
                                tf.shape(word_ids))
    return {"lm_logits": tf.cast(self.masked_lm(sequence, masked_positions=positions),
                                 tf.float32)}


def pretraining_input_specs(model: config_lib.KaleidoBertConfig,
                            pretraining: config_lib.PretrainingConfig
                            ) -> dict[str, tf.TensorSpec]:
  """Shapes and dtypes of the pre-training model's inputs (the contract's non-label keys, and
  the masked-LM labels when ITC or ITM reads the restored text)."""
  size = model.patch_size
  predictions = [None, pretraining.max_predictions]
  specs = {
      **backbone_lib.input_specs(model),
      "blank_positions": tf.TensorSpec([None, pretraining.num_b2cm], tf.int32),
      "grey_positions": tf.TensorSpec([None, pretraining.num_g2cm], tf.int32),
      "grey_targets": tf.TensorSpec([None, pretraining.num_g2cm, size, size, 3], tf.uint8),
      "masked_lm_positions": tf.TensorSpec(predictions, tf.int32),
  }
  if (pretraining.is_enabled("itc") or pretraining.itm_unmasked or
      pretraining.itm_negatives_per_positive):
    specs["masked_lm_ids"] = tf.TensorSpec(predictions, tf.int32)
    specs["masked_lm_weights"] = tf.TensorSpec(predictions, tf.float32)
  return specs


def _pretraining_heads(model: config_lib.KaleidoBertConfig,
                       backbone: backbone_lib.KaleidoBackbone,
                       contrastive: bool) -> heads_lib.PretrainingHeads:
  return heads_lib.PretrainingHeads(
      backbone.get_embedding_table(), model.feature_size, model.hidden_act,
      model.initializer_range,
      contrastive_head(model) if contrastive else None, name="heads")


def contrastive_head(model: config_lib.KaleidoBertConfig) -> heads_lib.ContrastiveHead:
  """The ITC head of `model`'s sizes."""
  return heads_lib.ContrastiveHead(model.contrastive_dim, model.contrastive_temperature,
                                   model.kaleido_levels, model.initializer_range,
                                   dtype=tf.float32, name="contrastive")


def build_pretrainer(model: config_lib.KaleidoBertConfig,
                     pretraining: config_lib.PretrainingConfig = config_lib.PretrainingConfig()
                     ) -> KaleidoPretrainer:
  """The pre-training model with its variables created."""
  backbone = _built_backbone(model)
  pretrainer = KaleidoPretrainer(
      backbone, _pretraining_heads(model, backbone, pretraining.is_enabled("itc")),
      model.num_patches, pretraining.is_enabled("b2cm"), model.kaleido_levels,
      pretraining.itm_unmasked, pretraining.itm_negatives_per_positive > 0,
      name="kaleido_bert_pretraining")
  build_symbolically(pretrainer, pretraining_input_specs(model, pretraining))
  return pretrainer


def build_finetune_model(task: config_lib.TaskConfig,
                         model: config_lib.KaleidoBertConfig) -> TaskModel:
  """The downstream model of `task` (retrieval, category, subcategory or caption), built."""
  backbone = _built_backbone(model)
  if task.name == "retrieval":
    result = KaleidoMatcher(
        backbone, heads_lib.linear_head(heads_lib.NUM_CLASSES_ITM, "itm", model.initializer_range),
        contrastive_head(model) if task.has_contrastive_head else None, model.kaleido_levels,
        name="kaleido_bert_retrieval")
  elif task.name == "caption":
    result = KaleidoCaptioner(
        backbone, heads_lib.masked_lm_head(backbone.get_embedding_table(), model.hidden_act,
                                           model.initializer_range),
        task.finetune.caption_mode, model.kaleido_levels, name="kaleido_bert_caption")
  else:
    result = KaleidoClassifier(backbone, heads_lib.ClassificationHead(
        task.finetune.num_classes, task.finetune.classifier_dropout, model.initializer_range,
        name="classifier_head"), name=f"kaleido_bert_{task.name}")
  build_symbolically(result, backbone_lib.input_specs(model))
  return result


def checkpoint_has_contrastive_head(path: str) -> bool:
  """Whether the pre-training checkpoint at `path` holds an ITC head (it was trained with itc)."""
  return any(name.startswith("model/heads/contrastive/") for name, _ in
             tf.train.list_variables(path))


def pretraining_checkpoint_objects(model: TaskModel,
                                   with_contrastive: bool = True) -> dict[str, tf.Module]:
  """{"model": ...}: the parts of `model` found in a pre-training checkpoint, in its layout;
  without `with_contrastive`, `model`'s ITC head is left out (a checkpoint trained without)."""
  heads = model.pretraining_heads()
  if not with_contrastive:
    heads.pop("contrastive", None)
  return {"model": tf.train.Checkpoint(backbone=model.backbone,
                                       heads=tf.train.Checkpoint(**heads))}
