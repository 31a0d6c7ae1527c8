"""Learning-rate groups: pretrained text-side weights at a lower rate than new patch layers."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from kaleido import config as config_lib
from kaleido.model import backbone as backbone_lib
from kaleido.model import kaleido_bert
from kaleido.training import optimization
from tests import test_model

LEARNING_RATE = 1e-2
_ADAMW = config_lib.OptimizerConfig(learning_rate=LEARNING_RATE, warmup_steps=0, weight_decay=0.0)


def _first_step_moves(lr_rules) -> dict[str, float]:
  """The learning rate each trainable variable of the tiny pre-training model was moved by in one
  AdamW step with no warm-up and no weight decay: Adam's first step moves a weight by
  lr * |g| / (|g| + eps / sqrt(1 - beta_2)), so |change| / that fraction is the variable's rate."""
  model = kaleido_bert.build_pretrainer(test_model.TINY, test_model.TASKS)
  batch = test_model.make_batch()
  optimizer = optimization.create_optimizer(_ADAMW, 100, lr_rules=lr_rules)
  with tf.GradientTape() as tape:
    outputs = model(test_model.model_inputs(model, batch), training=False)
    loss = sum(tf.reduce_sum(tf.cast(v, tf.float32) ** 2) for k, v in outputs.items()
               if k.endswith(("logits", "predictions")))
  variables = model.trainable_variables
  before = [v.numpy() for v in variables]
  gradients = tape.gradient(loss, variables)
  optimizer.apply_gradients([(g, v) for g, v in zip(gradients, variables) if g is not None])
  moves = {}
  for variable, gradient, old in zip(variables, gradients, before):
    if gradient is None:
      continue
    grad = np.abs(tf.convert_to_tensor(gradient).numpy())
    significant = grad > 1e-5
    if significant.any():
      fraction = grad / (grad + 1e-6 / np.sqrt(1 - 0.999))
      rate = np.abs(variable.numpy() - old) / np.maximum(fraction, 1e-12)
      moves[variable.name] = float(np.mean(rate[significant]))
  return moves


def _move(moves: dict[str, float], path: str) -> float:
  """The move of the one variable whose name ends with `path`."""
  (name,) = [name for name in moves if name.endswith(path)]
  return moves[name]


def test_pretrained_variables_move_by_the_lower_rate_new_ones_by_the_full_rate():
  rules = backbone_lib.pretrained_lr_rules(test_model.TINY.num_layers, 0.1, 0.5)
  moves = _first_step_moves(rules)
  expected = {
      "/encoder/transformer/layer_1/output/kernel:0": LEARNING_RATE * 0.1,  # top layer
      "/encoder/transformer/layer_0/output/kernel:0": LEARNING_RATE * 0.1 * 0.5,
      "/encoder/embeddings/word_embeddings/embeddings:0": LEARNING_RATE * 0.1 * 0.25,
      "/encoder/pooler_transform/kernel:0": LEARNING_RATE * 0.1,
      "/heads/masked_lm/transform/dense/kernel:0": LEARNING_RATE * 0.1,
      "/encoder/embeddings/level3_projection/kernel:0": LEARNING_RATE,  # new patch layer
      "/encoder/embeddings/patch_layer_norm/gamma:0": LEARNING_RATE,
      "/heads/itm/kernel:0": LEARNING_RATE,  # new head
  }
  for path, rate in expected.items():
    assert _move(moves, path) == pytest.approx(rate, rel=0.02), path


def test_reinitialised_top_layer_moves_by_the_full_rate_the_others_by_the_lower():
  moves = _first_step_moves(backbone_lib.pretrained_lr_rules(test_model.TINY.num_layers, 0.1, 1.0,
                                                             reinit_layers=1))
  assert _move(moves, "/encoder/transformer/layer_1/output/kernel:0") == pytest.approx(
      LEARNING_RATE, rel=0.02)
  assert _move(moves, "/encoder/transformer/layer_0/output/kernel:0") == pytest.approx(
      LEARNING_RATE * 0.1, rel=0.02)


def test_without_rules_every_variable_moves_by_the_full_rate():
  moves = _first_step_moves(backbone_lib.pretrained_lr_rules(test_model.TINY.num_layers, 1.0, 1.0))
  assert min(moves.values()) == pytest.approx(LEARNING_RATE, rel=0.02)
  assert max(moves.values()) == pytest.approx(LEARNING_RATE, rel=0.02)


def test_every_pretrained_variable_is_matched_and_no_new_one_is():
  model = kaleido_bert.build_pretrainer(test_model.TINY, test_model.TASKS)
  optimizer = optimization.create_optimizer(
      _ADAMW, 100, lr_rules=backbone_lib.pretrained_lr_rules(test_model.TINY.num_layers, 0.1, 1.0))
  slow = {v.name for v in model.trainable_variables
          if optimizer.lr_multiplier(v.name) is not None}
  new = ("level", "box_projection", "patch_layer_norm", "heads/itm", "heads/rr", "heads/jps",
         "heads/cp", "heads/g2cm", "heads/b2cm")
  assert not {name for name in slow if any(part in name for part in new)}
  assert len(slow) == len(model.trainable_variables) - sum(
      any(part in v.name for part in new) for v in model.trainable_variables)


def test_frozen_pretrained_weights_wait_while_new_layers_move():
  rules = backbone_lib.pretrained_lr_rules(test_model.TINY.num_layers, 0.1, 1.0)
  model = kaleido_bert.build_pretrainer(test_model.TINY, test_model.TASKS)
  batch = test_model.make_batch()
  optimizer = optimization.create_optimizer(
      dataclasses.replace(_ADAMW, frozen_pretrained_steps=1), 100, lr_rules=rules)
  with tf.GradientTape() as tape:
    outputs = model(test_model.model_inputs(model, batch), training=False)
    loss = sum(tf.reduce_sum(tf.cast(v, tf.float32) ** 2) for k, v in outputs.items()
               if k.endswith(("logits", "predictions")))
  variables = model.trainable_variables
  pairs = [(g, v) for g, v in zip(tape.gradient(loss, variables), variables) if g is not None]
  layer = next(v for _, v in pairs
               if v.name.endswith("/encoder/transformer/layer_0/output/kernel:0"))
  head = next(v for _, v in pairs if v.name.endswith("/heads/itm/kernel:0"))
  start = [layer.numpy(), head.numpy()]
  optimizer.apply_gradients(pairs)  # step 1: the pretrained layer is frozen
  np.testing.assert_array_equal(layer.numpy(), start[0])
  assert np.abs(head.numpy() - start[1]).max() == pytest.approx(LEARNING_RATE, rel=0.02)
  optimizer.apply_gradients(pairs)  # step 2: it moves, at a tenth of the rate
  moved = np.abs(layer.numpy() - start[0]).max()
  assert 0 < moved <= LEARNING_RATE * 0.1 * 1.01
