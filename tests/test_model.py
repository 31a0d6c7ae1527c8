"""Tests of the Kaleido-BERT pre-training model on a tiny configuration."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from kaleido import config
from kaleido.model import backbone as backbone_lib
from kaleido.model import embeddings
from kaleido.model import folded_resnet
from kaleido.model import kaleido_bert
from kaleido.model import losses
from kaleido.model import patch_embedder
from kaleido.patches import kaleido_grid
from kaleido.pretrained import resnet
from kaleido.utils import restoring

TINY = config.KaleidoBertConfig(vocab_size=100, hidden_size=32, num_layers=2, num_heads=2,
                          intermediate_size=64, patch_size=16, patch_cnn="small")
TASKS = config.PretrainingConfig()
BATCH = 2


def make_batch(model_config: config.KaleidoBertConfig = TINY, task_config: config.PretrainingConfig = TASKS,
               batch_size: int = BATCH, seed: int = 0) -> dict[str, np.ndarray]:
  """A random batch following kaleido.pretraining.features."""
  rng = np.random.default_rng(seed)
  length, size = model_config.max_seq_length, model_config.patch_size
  text_lengths = rng.integers(5, length, batch_size)
  input_mask = (np.arange(length)[None] < text_lengths[:, None]).astype(np.int32)
  pixels = lambda *shape: rng.integers(0, 256, (batch_size, *shape, size, size, 3), np.uint8)
  choose = lambda level, count: np.stack([
      rng.choice(np.arange(kaleido_grid.NUM_PATCHES)[kaleido_grid.level_slice(level)], count,
                 replace=False) for _ in range(batch_size)]).astype(np.int32)
  num_predictions = task_config.max_predictions
  return {
      "input_word_ids": (rng.integers(1, model_config.vocab_size, (batch_size, length))
                         * input_mask).astype(np.int32),
      "input_mask": input_mask,
      "patches": pixels(model_config.num_patches),
      "patch_boxes": rng.random((batch_size, model_config.num_patches, 5)).astype(np.float32),
      "blank_positions": choose(5, task_config.num_b2cm),
      "grey_positions": choose(4, task_config.num_g2cm),
      "grey_targets": pixels(task_config.num_g2cm),
      "masked_lm_positions": rng.integers(1, 5, (batch_size, num_predictions)).astype(np.int32),
      "masked_lm_ids": rng.integers(1, model_config.vocab_size,
                                    (batch_size, num_predictions)).astype(np.int32),
      "masked_lm_weights": (np.arange(num_predictions)[None]
                            < rng.integers(1, num_predictions, (batch_size, 1))).astype(np.float32),
      "itm_label": np.ones(batch_size, np.int32),
      "rr_label": rng.integers(0, 4, batch_size).astype(np.int32),
      "jps_label": rng.integers(0, 24, batch_size).astype(np.int32),
      "cp_label": rng.integers(0, 9, batch_size).astype(np.int32),
      "cp_weight": np.ones(batch_size, np.float32),
  }


def model_inputs(model: tf_keras.Model, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  return {key: batch[key] for key in model.input_keys}


@pytest.fixture(scope="module")
def model() -> tf_keras.Model:
  return kaleido_bert.build_pretrainer(TINY, TASKS)


def test_outputs_follow_the_contract(model):
  outputs = model(model_inputs(model, make_batch()), training=False)
  expected = {
      "mlm_logits": (BATCH, 10, TINY.vocab_size), "itm_logits": (BATCH, 2),
      "rr_logits": (BATCH, 4), "jps_logits": (BATCH, 24), "cp_logits": (BATCH, 9),
      "g2cm_predictions": (BATCH, 2, 2048), "g2cm_targets": (BATCH, 2, 2048),
      "b2cm_predictions": (BATCH, 3, 2048), "b2cm_targets": (BATCH, 3, 2048),
  }
  assert {key: tuple(value.shape) for key, value in outputs.items()} == expected
  assert all(value.dtype == tf.float32 for value in outputs.values())
  # A matching-only call (ITM on the masked pass here) computes ITM's head alone.
  matching = model(model_inputs(model, make_batch()), training=False, matching_only=True)
  assert set(matching) == {"itm_logits"}
  np.testing.assert_allclose(matching["itm_logits"], outputs["itm_logits"], atol=1e-5)


def test_every_level_has_its_own_type_embedding():
  layer = embeddings.KaleidoEmbeddings(TINY.vocab_size, TINY.hidden_size, TINY.max_seq_length)
  batch = make_batch()
  inputs = {"input_word_ids": batch["input_word_ids"],
            "patch_features": np.random.default_rng(1).random((BATCH, 55, 64), np.float32),
            "patch_boxes": batch["patch_boxes"]}
  before = layer(inputs).numpy()
  table = layer.type_embeddings.embeddings
  assert table.shape == (6, TINY.hidden_size)
  text = np.arange(TINY.max_seq_length)
  for type_id in range(6):
    table.assign_add(tf.random.normal(table.shape) * np.eye(6, 1, -type_id, np.float32))
    after = layer(inputs).numpy()
    changed = np.flatnonzero(np.abs(after - before).max(axis=(0, 2)) > 1e-4)
    expected = text if type_id == 0 else (
        TINY.max_seq_length + np.arange(55)[kaleido_grid.level_slice(type_id)])
    np.testing.assert_array_equal(changed, expected)
    before = after


def test_blank_zeroes_only_the_blank_rows():
  values = np.ones((2, 6, 3), np.float32)
  blanked = embeddings.blank(values, tf.constant([[1, 4], [0, 5]])).numpy()
  np.testing.assert_array_equal(blanked[:, :, 0], [[1, 0, 1, 1, 0, 1], [0, 1, 1, 1, 1, 0]])


def _with_blank_pixels_changed(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  changed = dict(batch, patches=batch["patches"].copy())
  for example, positions in enumerate(batch["blank_positions"]):
    changed["patches"][example, positions] = 255 - changed["patches"][example, positions]
  return changed


def test_blanked_pixels_reach_only_the_b2cm_targets(model):
  batch = make_batch()
  before = model(model_inputs(model, batch), training=False)
  after = model(model_inputs(model, _with_blank_pixels_changed(batch)), training=False)
  for key in before:
    if key == "b2cm_targets":
      assert not np.allclose(before[key], after[key])
    else:
      np.testing.assert_allclose(before[key], after[key], rtol=1e-6, atol=1e-6, err_msg=key)


def _with_masked_tokens_changed(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  word_ids = batch["input_word_ids"].copy()
  for example, positions in enumerate(batch["masked_lm_positions"]):
    masked = positions[positions > 0]
    word_ids[example, masked] = 1 + word_ids[example, masked] % (TINY.vocab_size - 1)
  return dict(batch, input_word_ids=word_ids)


def test_unmasked_itm_reads_the_restored_tokens_and_blanked_patches(model):
  unmasked = kaleido_bert.build_pretrainer(TINY, dataclasses.replace(TASKS, itm_unmasked=True))
  unmasked.set_weights(model.get_weights())
  positions = np.tile(np.arange(1, TASKS.max_predictions + 1, dtype=np.int32), (BATCH, 1))
  batch = dict(make_batch(), masked_lm_positions=positions)  # distinct, as real batches have
  batch["masked_lm_weights"][0] = 0  # an ITM negative: its text masked, its MLM not counted
  run = lambda pretrainer, inputs: pretrainer(model_inputs(pretrainer, inputs), training=False)
  base, tokens, blanks = (run(unmasked, inputs) for inputs in (
      batch, _with_masked_tokens_changed(batch), _with_blank_pixels_changed(batch)))
  # The masked pass sees the tokens at masked positions and the other heads read it; ITM reads
  # the original tokens (masked_lm_ids) there, negatives' too, and the blanked patches' pixels.
  assert not np.allclose(base["rr_logits"], tokens["rr_logits"])
  np.testing.assert_allclose(base["itm_logits"], tokens["itm_logits"], rtol=1e-5, atol=1e-6)
  assert not np.allclose(base["itm_logits"], blanks["itm_logits"])
  np.testing.assert_allclose(base["rr_logits"], blanks["rr_logits"], rtol=1e-5, atol=1e-6)
  masked = run(model, batch)
  np.testing.assert_allclose(base["rr_logits"], masked["rr_logits"], rtol=1e-5, atol=1e-6)
  assert not np.allclose(base["itm_logits"], masked["itm_logits"])


def test_without_b2cm_blank_positions_are_seen():
  tasks = config.PretrainingConfig(enabled=("amlm", "itm"))
  unblanked = kaleido_bert.build_pretrainer(TINY, tasks)
  batch = make_batch(task_config=tasks)
  before = unblanked(model_inputs(unblanked, batch), training=False)
  after = unblanked(model_inputs(unblanked, _with_blank_pixels_changed(batch)), training=False)
  assert not np.allclose(before["itm_logits"], after["itm_logits"])


def test_decoder_is_tied_to_word_embeddings(model):
  table = model.backbone.get_embedding_table()
  assert model.heads.masked_lm.embedding_table is table
  assert sum(variable is table for variable in model.trainable_variables) == 1


def test_frozen_patch_cnn_gets_no_gradient(model):
  cnn = model.backbone.patch_embedder.cnn
  assert cnn.weights and not model.backbone.patch_embedder.trainable_weights
  assert not any(v.ref() in {w.ref() for w in cnn.weights}
                 for v in model.trainable_variables)
  batch = make_batch()
  with tf.GradientTape() as tape:
    total = losses.pretraining_losses(batch, model(model_inputs(model, batch)), TASKS)["total"]
  gradients = tape.gradient(total, cnn.weights + model.trainable_variables)
  assert all(g is None for g in gradients[:len(cnn.weights)])
  assert all(g is not None for g in gradients[len(cnn.weights):])


def test_trainable_patch_cnn_gets_gradient():
  embedder = patch_embedder.PatchEmbedder("small", 16, 64, trainable=True)
  patches = make_batch()["patches"][:, :3]
  with tf.GradientTape() as tape:
    out = embedder(patches, training=True)
  assert out.shape == (BATCH, 3, 64)
  assert embedder.trainable_weights
  assert all(g is not None for g in tape.gradient(out, embedder.trainable_weights))


def test_patch_cnn_weights_load_from_an_h5_file(tmp_path):
  trained = patch_embedder.PatchEmbedder("small", 16, 64)
  path = str(tmp_path / "patch_cnn.h5")
  trained.cnn.save_weights(path)
  loaded = patch_embedder.PatchEmbedder("small", 16, 64)
  resnet.load_cnn_weights(loaded.cnn, path)
  patches = make_batch()["patches"][:, :2]
  np.testing.assert_array_equal(loaded(patches), trained(patches))


def test_gradient_step_reduces_the_total_loss():
  tiny = dataclasses.replace(TINY, dropout_rate=0.0, attention_dropout_rate=0.0)
  model = kaleido_bert.build_pretrainer(tiny, TASKS)
  batch = make_batch(tiny)
  optimizer = tf_keras.optimizers.Adam(1e-3)

  def step() -> tf.Tensor:
    with tf.GradientTape() as tape:
      total = losses.pretraining_losses(batch, model(model_inputs(model, batch), training=True),
                                        TASKS)["total"]
    optimizer.apply_gradients(zip(tape.gradient(total, model.trainable_variables),
                                  model.trainable_variables))
    return total

  totals = [float(step()) for _ in range(5)]
  assert totals[-1] < totals[0], totals


def test_mixed_precision_keeps_outputs_float32():
  tf_keras.mixed_precision.set_global_policy("mixed_bfloat16")
  try:
    mixed = kaleido_bert.build_pretrainer(TINY, TASKS)
    outputs = mixed(model_inputs(mixed, make_batch()), training=False)
  finally:
    tf_keras.mixed_precision.set_global_policy("float32")
  assert mixed.backbone.encoder.transformer_layers[0].compute_dtype == "bfloat16"
  for key, value in outputs.items():
    assert value.dtype == tf.float32 and np.isfinite(value.numpy()).all(), key


def test_a_finetuning_model_starts_from_the_pretraining_checkpoint(model, tmp_path):
  path = tf.train.Checkpoint(model=model).save(str(tmp_path / "pretrained"))
  matcher = kaleido_bert.build_finetune_model(config.TaskConfig(name="retrieval"), TINY)
  restoring.restore(path, kaleido_bert.pretraining_checkpoint_objects(matcher), "mismatch")
  batch = make_batch()
  logits = matcher(model_inputs(matcher, batch), training=False)["itm_logits"]
  pooled = model.backbone(model_inputs(matcher, batch), training=False)["pooled_output"]
  np.testing.assert_allclose(logits, model.heads.itm(pooled), atol=1e-5)
  # A fresh classifier's backbone is the pre-trained one; its new head stays initial.
  classifier = kaleido_bert.build_finetune_model(
      config.TaskConfig(name="category", finetune=config.FinetuneConfig(num_classes=3)), TINY)
  initial = classifier.classifier.dense.kernel.numpy()
  restoring.restore(path, kaleido_bert.pretraining_checkpoint_objects(classifier), "mismatch")
  np.testing.assert_array_equal(classifier.classifier.dense.kernel.numpy(), initial)
  for mine, theirs in zip(classifier.backbone.weights, model.backbone.weights):
    np.testing.assert_array_equal(mine.numpy(), theirs.numpy())


def test_backbone_rebuilds_from_its_config():
  built = backbone_lib.KaleidoBackbone.from_model_config(TINY)
  clone = backbone_lib.KaleidoBackbone.from_config(built.get_config())
  assert clone.get_config() == built.get_config()
  assert clone.get_config()["hidden_size"] == TINY.hidden_size
  assert clone.patch_embedder.get_config()["patch_size"] == TINY.patch_size


def test_resnet50_patch_cnn_is_frozen_with_2048_features():
  embedder = patch_embedder.PatchEmbedder("resnet50", patch_size=32)
  patches = np.random.default_rng(0).integers(0, 256, (1, 1, 32, 32, 3), np.uint8)
  inference = embedder(patches, training=False)
  assert inference.shape == (1, 1, 2048) and not embedder.trainable_weights
  np.testing.assert_allclose(embedder(patches, training=True), inference, rtol=1e-5, atol=1e-5)


def _resnet_with_moving_statistics(patch_size: int) -> tf_keras.Model:
  """A ResNet-50 whose batch norms have non-trivial gamma, beta, mean and variance."""
  cnn = patch_embedder.build_cnn("resnet50", patch_size, 2048)
  rng = np.random.default_rng(0)
  for layer in cnn.layers:
    if isinstance(layer, tf_keras.layers.BatchNormalization):
      shape = layer.gamma.shape
      layer.set_weights([rng.uniform(0.5, 1.5, shape), rng.normal(0, 0.1, shape),
                         rng.normal(0, 0.1, shape), rng.uniform(0.5, 2.0, shape)])
  return cnn


def test_folded_resnet_matches_the_keras_inference_call():
  cnn = _resnet_with_moving_statistics(32)
  pixels = tf.random.stateless_uniform([3, 32, 32, 3], (1, 2), -120.0, 120.0)
  expected = cnn(pixels, training=False).numpy()
  folded = folded_resnet.folded_forward(cnn, pixels).numpy()
  assert folded.shape == (3, 2048) and np.abs(expected).max() > 1.0
  np.testing.assert_allclose(folded, expected, atol=1e-5 * np.abs(expected).max())


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_frozen_resnet_embedder_uses_the_folded_forward(policy):
  tf_keras.mixed_precision.set_global_policy(policy)
  try:
    embedder = patch_embedder.PatchEmbedder("resnet50", patch_size=32)
    embedder.cnn.set_weights(_resnet_with_moving_statistics(32).get_weights())
    patches = np.random.default_rng(1).integers(0, 256, (2, 3, 32, 32, 3), np.uint8)
    pixels = patch_embedder.preprocess(
        "resnet50", tf.reshape(tf.cast(patches, tf.float32), [-1, 32, 32, 3]))
    expected = tf.cast(embedder.cnn(pixels, training=False), tf.float32).numpy()
    features = embedder(patches).numpy()
  finally:
    tf_keras.mixed_precision.set_global_policy("float32")
  assert features.dtype == np.float32 and features.shape == (2, 3, 2048)
  tolerance = 1e-5 if policy == "float32" else 5e-2  # relative to the largest feature
  np.testing.assert_allclose(features, expected.reshape(2, 3, 2048),
                             atol=tolerance * np.abs(expected).max())


def test_left_out_levels_reach_no_text_state():
  fine = dataclasses.replace(TINY, kaleido_levels=(5,), dropout_rate=0.0,
                             attention_dropout_rate=0.0)
  backbone = backbone_lib.KaleidoBackbone.from_model_config(fine)
  batch = make_batch(fine)
  features = np.random.default_rng(2).normal(size=(BATCH, 55, fine.feature_size))
  inputs = {key: batch[key] for key in ("input_word_ids", "input_mask", "patch_boxes")}

  def text_states(patch_features):
    outputs = backbone({**inputs, "patch_features": tf.constant(patch_features, tf.float32)})
    return outputs["sequence_output"].numpy()[:, :fine.max_seq_length]

  base = text_states(features)
  coarse = features.copy()
  coarse[:, :30] += 5.0  # levels 1-4
  np.testing.assert_allclose(text_states(coarse), base, atol=1e-5)
  finest = features.copy()
  finest[:, 30:] += 5.0  # level 5
  assert np.abs(text_states(finest) - base).max() > 1e-3


def test_attention_probabilities_cover_only_visible_positions_and_are_even_without_keys():
  encoder = backbone_lib.KaleidoBackbone.from_model_config(
      dataclasses.replace(TINY, kaleido_levels=(1, 2))).encoder
  batch = make_batch()
  inputs = {"input_word_ids": batch["input_word_ids"], "input_mask": batch["input_mask"],
            "patch_features": np.random.default_rng(2).random((BATCH, 55, 64), np.float32),
            "patch_boxes": batch["patch_boxes"]}
  layers = encoder.attention_probabilities(inputs)
  length = TINY.max_seq_length
  visible = np.concatenate([batch["input_mask"], np.tile(kaleido_grid.visible_patches((1, 2)),
                                                         (BATCH, 1))], 1)  # (B, S) keys
  assert len(layers) == TINY.num_layers and encoder.num_visible_patches == 5
  for probabilities in layers:
    probabilities = probabilities.numpy()
    assert probabilities.shape == (BATCH, TINY.num_heads, length + 55, length + 55)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)
    assert np.abs(probabilities * (1 - visible[:, None, None])).max() == 0  # masked keys
  # With zero query weights every query spreads evenly over the keys it may see: a text query
  # puts 5 / (5 + its real tokens) on the patches.
  for layer in encoder.transformer_layers:
    query = layer._attention_layer._query_dense  # pylint: disable=protected-access
    query.set_weights([np.zeros_like(w) for w in query.get_weights()])
  first = encoder.attention_probabilities(inputs)[0].numpy()
  on_patches = first[:, :, 0, length:].sum(-1)  # the [CLS] query, every head
  expected = 5 / (5 + batch["input_mask"].sum(1))
  np.testing.assert_allclose(on_patches, np.repeat(expected[:, None], TINY.num_heads, 1),
                             rtol=1e-5)


def test_blocks_before_the_fusion_layer_attend_within_each_modality_only():
  encoder = backbone_lib.KaleidoBackbone.from_model_config(
      dataclasses.replace(TINY, fusion_layer=1)).encoder
  batch = make_batch()
  inputs = {"input_word_ids": batch["input_word_ids"], "input_mask": batch["input_mask"],
            "patch_features": np.random.default_rng(2).random((BATCH, 55, 64), np.float32),
            "patch_boxes": batch["patch_boxes"]}
  within, fused = (p.numpy() for p in encoder.attention_probabilities(inputs))
  length = TINY.max_seq_length
  assert within[..., :length, length:].max() == 0 and within[..., length:, :length].max() == 0
  np.testing.assert_allclose(within[..., :length, :length].sum(-1), 1.0, atol=1e-5)
  assert fused[..., :length, length:].sum(-1).min() > 0.05  # text sees patches after fusion
