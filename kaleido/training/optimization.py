"""AdamW with linear warm-up and linear decay (paper 4.1: lr 2e-5, weight decay 1e-4, 5K warm-up)."""

from __future__ import annotations

from official.nlp import optimization
import tf_keras


def create_optimizer(learning_rate: float, train_steps: int, warmup_steps: int,
                     weight_decay: float,
                     mixed_precision: str = "none") -> tf_keras.optimizers.Optimizer:
  """tf-models-official's AdamWeightDecay (LayerNorm and biases excluded from decay).

  Gradient clipping is left to the caller, which clips after the cross-replica sum. float16
  training wraps the optimizer in a dynamic loss-scale optimizer.
  """
  decay = tf_keras.optimizers.schedules.PolynomialDecay(
      initial_learning_rate=learning_rate, decay_steps=max(1, train_steps),
      end_learning_rate=0.0)
  schedule = (optimization.WarmUp(learning_rate, decay, warmup_steps) if warmup_steps
              else decay)
  optimizer = optimization.AdamWeightDecay(
      learning_rate=schedule, weight_decay_rate=weight_decay, beta_1=0.9, beta_2=0.999,
      epsilon=1e-6, exclude_from_weight_decay=["LayerNorm", "layer_norm", "bias"],
      gradient_clip_norm=0.0)
  if mixed_precision == "mixed_float16":
    optimizer = tf_keras.mixed_precision.LossScaleOptimizer(optimizer)
  return optimizer


def current_learning_rate(optimizer: tf_keras.optimizers.Optimizer) -> float:
  """The learning rate the schedule gives at the optimizer's current step."""
  inner = getattr(optimizer, "inner_optimizer", optimizer)
  schedule = inner.learning_rate
  if callable(schedule):
    return float(schedule(inner.iterations))
  return float(schedule)
