"""Tests of the pre-training losses and accuracies against NumPy, and under MirroredStrategy."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from kaleido import config
from kaleido.model import losses

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TASKS = config.PretrainingConfig(enabled=config.ALL_LOSSES)  # the paper's seven and ITC
ITM_LABELS = np.array([1, 0, 1, 1], np.int32)  # example 1 is a negative pair
PRODUCT_KEYS = np.array([5, 6, 7, 5], np.int64)  # examples 0 and 3 show the same product
FEATURES = 16


def synthetic(seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
  """Labels of 4 examples and model outputs for them."""
  rng = np.random.default_rng(seed)
  size = len(ITM_LABELS)
  batch = {
      "masked_lm_ids": rng.integers(0, 7, (size, 10)).astype(np.int32),
      "masked_lm_weights": (np.arange(10)[None] < [[3], [10], [1], [5]]).astype(np.float32),
      "itm_label": ITM_LABELS,
      "rr_label": rng.integers(0, 4, size).astype(np.int32),
      "jps_label": rng.integers(0, 24, size).astype(np.int32),
      "cp_label": rng.integers(0, 9, size).astype(np.int32),
      "cp_weight": np.ones(size, np.float32),
      "product_key": PRODUCT_KEYS,
  }
  logits = lambda *shape: rng.normal(0, 2, (size, *shape)).astype(np.float32)
  unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)
  outputs = {
      "mlm_logits": logits(10, 7), "itm_logits": logits(2), "rr_logits": logits(4),
      "jps_logits": logits(24), "cp_logits": logits(9),
      "g2cm_predictions": logits(2, FEATURES), "g2cm_targets": logits(2, FEATURES),
      "b2cm_predictions": logits(3, FEATURES), "b2cm_targets": logits(3, FEATURES),
      "itc_text": unit(logits(FEATURES)), "itc_image": unit(logits(FEATURES)),
      "itc_logit_scale": np.float32(3.0),
  }
  return batch, outputs


def np_log_softmax(x: np.ndarray) -> np.ndarray:
  x = x.astype(np.float64) - x.max(axis=-1, keepdims=True)
  return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def np_cross_entropy(labels: np.ndarray, logits: np.ndarray) -> np.ndarray:
  return -np.take_along_axis(np_log_softmax(logits), labels[..., None], axis=-1)[..., 0]


def np_kl(targets: np.ndarray, predictions: np.ndarray) -> np.ndarray:
  log_p, log_q = np_log_softmax(targets), np_log_softmax(predictions)
  return (np.exp(log_p) * (log_p - log_q)).sum(axis=-1)


def as_floats(values: dict[str, tf.Tensor]) -> dict[str, float]:
  return {key: float(value) for key, value in values.items()}


def test_cross_entropy_losses_match_numpy():
  batch, outputs = synthetic()
  got = as_floats(losses.pretraining_losses(batch, outputs, TASKS))
  matched = ITM_LABELS == 1
  mlm = np_cross_entropy(batch["masked_lm_ids"], outputs["mlm_logits"])
  mlm_weights = batch["masked_lm_weights"] * matched[:, None]
  assert got["amlm"] == pytest.approx((mlm * mlm_weights).sum() / mlm_weights.sum(), rel=1e-5)
  itm = np_cross_entropy(ITM_LABELS, outputs["itm_logits"]).mean()
  assert got["itm"] == pytest.approx(itm, rel=1e-5)
  for name in ("rr", "jps", "cp"):
    expected = np_cross_entropy(batch[f"{name}_label"], outputs[f"{name}_logits"])[matched]
    assert got[name] == pytest.approx(expected.mean(), rel=1e-5), name


def test_cp_counts_only_really_camouflaged_matched_examples():
  batch, outputs = synthetic()
  batch["cp_weight"] = np.array([0.0] + [1.0] * (len(ITM_LABELS) - 1), np.float32)
  got = as_floats(losses.pretraining_losses(batch, outputs, TASKS))
  counted = (ITM_LABELS == 1) & (batch["cp_weight"] == 1)
  expected = np_cross_entropy(batch["cp_label"], outputs["cp_logits"])[counted]
  assert got["cp"] == pytest.approx(expected.mean(), rel=1e-5)


def test_kl_losses_match_numpy():
  batch, outputs = synthetic()
  got = as_floats(losses.pretraining_losses(batch, outputs, TASKS))
  for name in ("g2cm", "b2cm"):
    divergence = np_kl(outputs[f"{name}_targets"], outputs[f"{name}_predictions"])
    assert got[name] == pytest.approx(divergence[ITM_LABELS == 1].mean(), rel=1e-5), name
  same = losses.kl_divergence(outputs["g2cm_targets"], outputs["g2cm_targets"])
  np.testing.assert_allclose(same, 0.0, atol=1e-6)


def test_unmatched_pairs_count_only_for_itm():
  batch, outputs = synthetic()
  before = as_floats(losses.pretraining_losses(batch, outputs, TASKS))
  shuffled = {key: value.copy() for key, value in outputs.items()}
  for value in shuffled.values():
    if value.ndim:
      value[1] = value[1][::-1] + 1.0  # the negative pair's outputs change
  after = as_floats(losses.pretraining_losses(batch, shuffled, TASKS))
  changed = {name for name in config.ALL_LOSSES if abs(after[name] - before[name]) > 1e-6}
  assert changed == {"itm"}


def test_total_is_the_weighted_sum_and_disabled_tasks_are_zero():
  tasks = config.PretrainingConfig(enabled=("amlm", "itm", "rr"),
                            weights=(("amlm", 1.0), ("itm", 0.5), ("rr", 2.0), ("cp", 3.0)))
  batch, outputs = synthetic()
  got = as_floats(losses.pretraining_losses(batch, outputs, tasks))
  assert set(got) == set(config.ALL_LOSSES) | {"total"}
  assert all(got[name] == 0.0 for name in ("jps", "cp", "g2cm", "b2cm"))
  assert got["total"] == pytest.approx(got["amlm"] + 0.5 * got["itm"] + 2.0 * got["rr"])


def test_matching_only_counts_and_reports_itm_and_itc_alone():
  weights = tuple((name, 0.5 if name == "itm" else 1.0) for name in config.ALL_LOSSES)
  tasks = config.PretrainingConfig(enabled=config.ALL_LOSSES, weights=weights)
  batch, outputs = synthetic()
  every = as_floats(losses.replica_losses(batch, outputs, tasks))
  first = as_floats(losses.replica_losses(batch, outputs, tasks, matching_only=True))
  assert every["total"] == pytest.approx(
      sum(tasks.weight(name) * every[name] for name in config.ALL_LOSSES), rel=1e-6)
  assert set(first) == {"itm", "itc", "total"}
  assert first == pytest.approx({"itm": every["itm"], "itc": every["itc"],
                                 "total": 0.5 * every["itm"] + every["itc"]}, rel=1e-6)
  # A matching-only pass has no masked-pass heads: nothing else is read.
  matching_outputs = {key: value for key, value in outputs.items()
                      if key == "itm_logits" or key.startswith("itc_")}
  assert as_floats(losses.replica_losses(batch, matching_outputs, tasks,
                                         matching_only=True)) == pytest.approx(first)
  metrics = as_floats(losses.replica_metrics(batch, matching_outputs, matching_only=True))
  assert set(metrics) == {"itm_accuracy", losses.CONTRASTIVE_ACCURACY}


def test_batch_without_matched_pairs_gives_zero_not_nan():
  batch, outputs = synthetic()
  batch["itm_label"] = np.zeros_like(ITM_LABELS)
  got = as_floats(losses.pretraining_losses(batch, outputs, TASKS))
  assert all(got[name] == 0.0 for name in config.ALL_LOSSES if name != "itm")
  assert np.isfinite(got["total"]) and got["total"] == pytest.approx(got["itm"])


def test_accuracies_match_numpy():
  batch, outputs = synthetic()
  got = as_floats(losses.pretraining_metrics(batch, outputs))
  matched = ITM_LABELS == 1
  hits = lambda labels, logits: logits.argmax(-1) == labels
  mlm_weights = batch["masked_lm_weights"] * matched[:, None]
  mlm = (hits(batch["masked_lm_ids"], outputs["mlm_logits"]) * mlm_weights).sum()
  assert got["mlm_accuracy"] == pytest.approx(mlm / mlm_weights.sum())
  assert got["itm_accuracy"] == pytest.approx(hits(ITM_LABELS, outputs["itm_logits"]).mean())
  for name in ("rr", "jps", "cp"):
    expected = hits(batch[f"{name}_label"], outputs[f"{name}_logits"])[matched].mean()
    assert got[f"{name}_accuracy"] == pytest.approx(expected), name


def np_contrastive(batch, outputs) -> tuple[float, float]:
  """ITC loss and accuracy, one query at a time: matched pairs only, the other pairs of a query's
  product left out of its candidates."""
  matched = np.flatnonzero(batch["itm_label"] == 1)
  product = batch["product_key"]
  losses_, firsts = [], []
  for i in matched:
    candidates = [j for j in matched if j == i or product[j] != product[i]]
    for queries, keys in (("itc_text", "itc_image"), ("itc_image", "itc_text")):
      logits = outputs["itc_logit_scale"] * outputs[keys][candidates] @ outputs[queries][i]
      own = candidates.index(i)
      losses_.append(-np_log_softmax(logits)[own])
      firsts.append(float(np.argmax(logits) == own))
  return float(np.mean(losses_)), float(np.mean(firsts))


def test_contrastive_loss_matches_numpy():
  batch, outputs = synthetic()
  loss, accuracy = np_contrastive(batch, outputs)
  assert float(losses.pretraining_losses(batch, outputs, TASKS)["itc"]) == pytest.approx(loss,
                                                                                        rel=1e-5)
  got = float(losses.pretraining_metrics(batch, outputs)["itc_accuracy"])
  assert got == pytest.approx(accuracy)
  # Without the same-product rule example 3 would be a negative of example 0: the loss changes.
  distinct = {**batch, "product_key": np.arange(4, dtype=np.int64)}
  assert float(losses.pretraining_losses(distinct, outputs, TASKS)["itc"]) != pytest.approx(loss)


def test_replica_values_equal_batch_values_on_one_replica():
  batch, outputs = synthetic()
  single = as_floats({**losses.pretraining_losses(batch, outputs, TASKS),
                      **losses.pretraining_metrics(batch, outputs)})
  replica = as_floats({**losses.replica_losses(batch, outputs, TASKS),
                       **losses.replica_metrics(batch, outputs)})
  assert replica == pytest.approx(single, rel=1e-6)


MIRRORED = """
import json
import tensorflow as tf
from kaleido import config
from kaleido.model import losses
from tests import test_losses

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
batch, outputs = test_losses.synthetic()
halves = (slice(0, 1), slice(1, 4))  # uneven: replica 0 holds 1 example, replica 1 three
part = lambda values, context: {k: v[halves[context.replica_id_in_sync_group]] if v.ndim else v
                                for k, v in values.items()}
values = strategy.experimental_distribute_values_from_function(
    lambda context: (part(batch, context), part(outputs, context)))
shares = strategy.run(lambda b, o: {**losses.replica_losses(b, o, test_losses.TASKS),
                                     **losses.replica_metrics(b, o)}, args=values)
summed = {k: float(strategy.reduce("SUM", v, axis=None)) for k, v in shares.items()}
print(json.dumps({"replicas": strategy.num_replicas_in_sync, "losses": summed}))
"""


def test_replica_shares_sum_to_the_global_batch_values_under_mirrored_strategy():
  result = subprocess.run([sys.executable, "-c", MIRRORED], capture_output=True, text=True,
                          cwd=REPO_ROOT, timeout=120,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES=""))
  assert result.returncode == 0, result.stderr
  got = json.loads(result.stdout.strip().splitlines()[-1])
  assert got["replicas"] == 2
  batch, outputs = synthetic()
  expected = as_floats({**losses.pretraining_losses(batch, outputs, TASKS),
                        **losses.pretraining_metrics(batch, outputs)})
  assert got["losses"] == pytest.approx(expected, rel=1e-5)
