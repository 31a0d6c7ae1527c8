"""Accuracy, both macro-F1 variants and the confusion matrix on a hand-computed case."""

import csv
import json

import numpy as np
import pytest

from kaleido.evaluation import classification as evaluation
from kaleido.metrics import classification

# 5 class ids: 0-2 occur as true labels, 3 never occurs, 4 is only predicted (once, wrongly).
LABELS = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 0])
PREDICTIONS = np.array([0, 0, 1, 1, 4, 2, 2, 0, 2, 0])
# Per class 2tp / (2tp + fp + fn): 0: 6/8, 1: 2/4, 2: 6/7, 3: 0 (no support, no prediction),
# 4: 0/1.
F1 = [0.75, 0.5, 6 / 7, 0.0, 0.0]
NAMES = ["TOPS", "PANTS", "SHOES", "BAGS", "HATS"]


def _confusion():
  return classification.confusion_matrix(LABELS, PREDICTIONS, 5)


def test_confusion_matrix_rows_are_true_classes():
  assert _confusion().tolist() == [
      [3, 1, 0, 0, 0],
      [0, 1, 0, 0, 1],
      [1, 0, 3, 0, 0],
      [0, 0, 0, 0, 0],
      [0, 0, 0, 0, 0],
  ]


def test_accuracy_and_both_macro_f1_variants():
  confusion = _confusion()
  assert classification.accuracy(confusion) == pytest.approx(0.7)
  np.testing.assert_allclose(classification.per_class_f1(confusion), F1)
  # Over all 5 class ids (the original release): (0.75 + 0.5 + 6/7) / 5.
  assert classification.macro_f1(confusion, "all") == pytest.approx(0.4214285714)
  # Over the 3 classes present among the true labels: (0.75 + 0.5 + 6/7) / 3.
  assert classification.macro_f1(confusion, "present") == pytest.approx(0.7023809524)
  with pytest.raises(ValueError):
    classification.macro_f1(confusion, "weighted")


def test_out_of_range_ids_are_refused():
  with pytest.raises(ValueError, match=r"\[0, 3\)"):
    classification.confusion_matrix(np.array([0, 1]), np.array([0, 3]), 3)


def test_evaluation_leaves_out_unknown_labels():
  labels = np.concatenate([LABELS, [-1, -1]])
  predictions = np.concatenate([PREDICTIONS, [0, 2]])
  result, confusion = evaluation.evaluate_classification(labels, predictions, NAMES)
  assert result == pytest.approx({
      "accuracy": 70.0, "macro_f1_all": 0.4214285714, "macro_f1_present": 0.7023809524,
      "num_examples": 10, "num_unlabeled": 2, "num_classes": 5, "num_classes_present": 3})
  assert confusion.tolist() == _confusion().tolist()


def test_confusion_matrix_files(tmp_path):
  confusion = _confusion()
  csv_path = tmp_path / "confusion.csv"
  classification.write_confusion_matrix(str(csv_path), confusion, NAMES)
  with open(csv_path, newline="", encoding="utf-8") as f:
    rows = list(csv.reader(f))
  assert rows[0] == ["true \\ predicted", *NAMES]
  assert rows[1] == ["TOPS", "3", "1", "0", "0", "0"]
  assert rows[3] == ["SHOES", "1", "0", "3", "0", "0"]
  json_path = tmp_path / "confusion.json"
  classification.write_confusion_matrix(str(json_path), confusion, NAMES)
  payload = json.loads(json_path.read_text())
  assert payload["class_names"] == NAMES and payload["matrix"] == confusion.tolist()
  assert sorted(p.name for p in tmp_path.iterdir()) == ["confusion.csv", "confusion.json"]


def test_pairwise_auc_counts_ties_as_half():
  assert classification.pairwise_auc(np.array([3.0, 1.0]), np.array([2.0, 0.0])) == 0.75
  assert classification.pairwise_auc(np.zeros(2), np.zeros(2)) == 0.5
