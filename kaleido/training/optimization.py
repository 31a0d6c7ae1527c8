"""AdamW with linear warm-up and linear decay (paper 4.1: lr 2e-5, weight decay 1e-4, 5K warm-up),
and learning-rate multipliers per group of variables (e.g. a lower rate for pretrained BERT
weights than for the new patch embeddings and heads)."""

from __future__ import annotations

import re
from typing import Sequence

from official.nlp import optimization
import tensorflow as tf
import tf_keras

# (regular expression searched in a variable's name, learning-rate multiplier); the first rule
# that matches a variable applies, and a variable no rule matches trains at the full rate.
LrRules = Sequence[tuple[str, float]]


class AdamWeightDecayWithMultipliers(optimization.AdamWeightDecay):
  """tf-models-official's AdamWeightDecay, where a variable's learning rate, and with it its
  weight decay step, is the schedule's rate times the multiplier of its first matching rule."""

  def __init__(self, *args, lr_rules: LrRules = (), **kwargs):
    super().__init__(*args, **kwargs)
    self._lr_rules = tuple((re.compile(pattern), float(multiplier))
                           for pattern, multiplier in lr_rules)

  def lr_multiplier(self, variable_name: str) -> float:
    """The multiplier of the first rule matching `variable_name` (1 when none does)."""
    for pattern, multiplier in self._lr_rules:
      if pattern.search(variable_name):
        return multiplier
    return 1.0

  def _scaled_state(self, var: tf.Variable, apply_state):
    """`apply_state` with the learning rates of `var`'s device and dtype scaled for `var`."""
    multiplier = self.lr_multiplier(var.name)
    if multiplier == 1.0:
      return apply_state
    key = (var.device, var.dtype.base_dtype)
    coefficients = dict((apply_state or {}).get(key) or self._fallback_apply_state(*key))
    for name in ("lr_t", "lr"):
      coefficients[name] = coefficients[name] * tf.cast(multiplier, coefficients[name].dtype)
    return {**(apply_state or {}), key: coefficients}

  def _resource_apply_dense(self, grad, var, apply_state=None):
    return super()._resource_apply_dense(grad, var, self._scaled_state(var, apply_state))

  def _resource_apply_sparse(self, grad, var, indices, apply_state=None):
    return super()._resource_apply_sparse(grad, var, indices,
                                          self._scaled_state(var, apply_state))


def create_optimizer(learning_rate: float, train_steps: int, warmup_steps: int,
                     weight_decay: float, mixed_precision: str = "none",
                     lr_rules: LrRules = ()) -> tf_keras.optimizers.Optimizer:
  """AdamWeightDecay (LayerNorm and biases excluded from decay) with `lr_rules`.

  Gradient clipping is left to the caller, which clips after the cross-replica sum. float16
  training wraps the optimizer in a dynamic loss-scale optimizer.
  """
  decay = tf_keras.optimizers.schedules.PolynomialDecay(
      initial_learning_rate=learning_rate, decay_steps=max(1, train_steps),
      end_learning_rate=0.0)
  schedule = (optimization.WarmUp(learning_rate, decay, warmup_steps) if warmup_steps
              else decay)
  optimizer = AdamWeightDecayWithMultipliers(
      learning_rate=schedule, weight_decay_rate=weight_decay, beta_1=0.9, beta_2=0.999,
      epsilon=1e-6, exclude_from_weight_decay=["LayerNorm", "layer_norm", "bias"],
      gradient_clip_norm=0.0, lr_rules=lr_rules)
  if mixed_precision == "mixed_float16":
    optimizer = tf_keras.mixed_precision.LossScaleOptimizer(optimizer)
  return optimizer


def current_learning_rate(optimizer: tf_keras.optimizers.Optimizer) -> float:
  """The learning rate the schedule gives at the optimizer's current step (multiplier 1)."""
  inner = getattr(optimizer, "inner_optimizer", optimizer)
  schedule = inner.learning_rate
  if callable(schedule):
    return float(schedule(inner.iterations))
  return float(schedule)
