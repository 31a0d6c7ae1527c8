"""AdamW with linear warm-up and linear decay (paper 4.1: lr 2e-5, weight decay 1e-4, 5K warm-up),
and learning-rate multipliers per group of variables (e.g. a lower rate for pretrained BERT
weights than for the new patch embeddings and heads)."""

from __future__ import annotations

import re
from typing import Sequence

from official.nlp import optimization
import tensorflow as tf
import tf_keras

from kaleido import config as config_lib

# (regular expression searched in a variable's name, learning-rate multiplier); the first rule
# that matches a variable applies, and a variable no rule matches trains at the full rate.
LrRules = Sequence[tuple[str, float]]


class AdamWeightDecayWithMultipliers(optimization.AdamWeightDecay):
  """tf-models-official's AdamWeightDecay, where a variable's learning rate, and with it its
  weight decay step, is the schedule's rate times the multiplier of its first matching rule;
  the variables a rule matches stay fixed (multiplier 0) for the first `frozen_steps` steps."""

  def __init__(self, *args, lr_rules: LrRules = (), frozen_steps: int = 0, **kwargs):
    super().__init__(*args, **kwargs)
    self._lr_rules = tuple((re.compile(pattern), float(multiplier))
                           for pattern, multiplier in lr_rules)
    self._frozen_steps = frozen_steps

  def lr_multiplier(self, variable_name: str) -> float | None:
    """The multiplier of the first rule matching `variable_name`; None when none does (the
    variable trains at the full rate)."""
    for pattern, multiplier in self._lr_rules:
      if pattern.search(variable_name):
        return multiplier
    return None

  def _scaled_state(self, var: tf.Variable, apply_state):
    """`apply_state` with the learning rates of `var`'s device and dtype scaled for `var`."""
    multiplier = self.lr_multiplier(var.name)
    if multiplier is None or (multiplier == 1.0 and not self._frozen_steps):
      return apply_state
    key = (var.device, var.dtype.base_dtype)
    coefficients = dict((apply_state or {}).get(key) or self._fallback_apply_state(*key))
    for name in ("lr_t", "lr"):
      scale = tf.cast(multiplier, coefficients[name].dtype)
      if self._frozen_steps:
        scale = tf.where(self.iterations < self._frozen_steps, tf.zeros_like(scale), scale)
      coefficients[name] = coefficients[name] * scale
    return {**(apply_state or {}), key: coefficients}

  def _resource_apply_dense(self, grad, var, apply_state=None):
    return super()._resource_apply_dense(grad, var, self._scaled_state(var, apply_state))

  def _resource_apply_sparse(self, grad, var, indices, apply_state=None):
    return super()._resource_apply_sparse(grad, var, indices,
                                          self._scaled_state(var, apply_state))


def _schedule(optimizer: config_lib.OptimizerConfig, train_steps: int):
  """The learning rate by step: constant, or linear warm-up then linear decay to 0."""
  if optimizer.schedule == "constant":
    return optimizer.learning_rate
  decay = tf_keras.optimizers.schedules.PolynomialDecay(
      initial_learning_rate=optimizer.learning_rate, decay_steps=max(1, train_steps),
      end_learning_rate=0.0)
  if optimizer.warmup_steps:
    return optimization.WarmUp(optimizer.learning_rate, decay, optimizer.warmup_steps)
  return decay


def create_optimizer(optimizer: config_lib.OptimizerConfig, train_steps: int,
                     mixed_precision: str = "none",
                     lr_rules: LrRules = ()) -> tf_keras.optimizers.Optimizer:
  """The optimizer `optimizer` describes, with `lr_rules` (AdamW only).

  adamw: tf-models-official's AdamWeightDecay (BERT's: LayerNorm and biases excluded from the
  decay, epsilon 1e-6); adam: Keras' Adam (epsilon 1e-7, no decay). Gradient clipping is left to
  the caller, which clips after the cross-replica sum. float16 training wraps the optimizer in a
  dynamic loss-scale optimizer.
  """
  schedule = _schedule(optimizer, train_steps)
  if optimizer.name == "adam":
    if lr_rules or optimizer.frozen_pretrained_steps:
      raise ValueError("Learning-rate groups need --optimizer=adamw.")
    result = tf_keras.optimizers.Adam(learning_rate=schedule)
  else:
    result = AdamWeightDecayWithMultipliers(
        learning_rate=schedule, weight_decay_rate=optimizer.weight_decay, beta_1=0.9,
        beta_2=0.999, epsilon=1e-6, exclude_from_weight_decay=["LayerNorm", "layer_norm", "bias"],
        gradient_clip_norm=0.0, lr_rules=lr_rules,
        frozen_steps=optimizer.frozen_pretrained_steps)
  if mixed_precision == "mixed_float16":
    result = tf_keras.mixed_precision.LossScaleOptimizer(result)
  return result


def apply_summed_gradients(optimizer: tf_keras.optimizers.Optimizer,
                           grads_and_vars: list[tuple[tf.Tensor, tf.Variable]]) -> None:
  """Applies gradients already summed across replicas (no second aggregation)."""
  inner = getattr(optimizer, "inner_optimizer", optimizer)
  if isinstance(inner, tf_keras.optimizers.legacy.Optimizer):
    optimizer.apply_gradients(grads_and_vars, experimental_aggregate_gradients=False)
  else:
    optimizer.apply_gradients(grads_and_vars, skip_gradients_aggregation=True)


def current_learning_rate(optimizer: tf_keras.optimizers.Optimizer) -> float:
  """The learning rate the schedule gives at the optimizer's current step (multiplier 1)."""
  inner = getattr(optimizer, "inner_optimizer", optimizer)
  schedule = inner.learning_rate
  if callable(schedule):
    return float(schedule(inner.iterations))
  return float(schedule)
