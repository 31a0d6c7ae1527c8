"""Accuracy, macro-F1 and the confusion matrix for category / subcategory recognition, and the
AUC of a binary score (matched against mismatched image-text pairs).

Two macro-F1 variants, because papers differ and the paper's Table 3 does not say:
- "all": the mean of the per-class F1 over every class id 0..num_classes-1. A class with no
  true example and no prediction has F1 = 0 and still counts. This is what the original release
  reported (scikit-learn's macro F1 over all label ids, zero_division = 0), so Table 3's 0.714 /
  0.636 are comparable with this variant; on a split where some classes are absent it is lower.
- "present": the mean over the classes present among the TRUE labels of the evaluation set
  (classes that are only predicted, never true, are left out; their wrong predictions still lower
  the recall of the true classes).
(scikit-learn's default, over the union of true and predicted labels, is neither.)
Per class, F1 = 2 * tp / (2 * tp + fp + fn), and 0 when that denominator is 0.
"""

from __future__ import annotations

import csv
import os
from typing import Sequence

import numpy as np

from kaleido.utils import files

MACRO_F1_VARIANTS = ("all", "present")


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
  """(num_classes, num_classes) counts; row = true class, column = predicted class."""
  labels = np.asarray(labels, dtype=np.int64)
  predictions = np.asarray(predictions, dtype=np.int64)
  if labels.shape != predictions.shape or labels.ndim != 1:
    raise ValueError(f"labels {labels.shape} and predictions {predictions.shape} must be the same "
                     "1-D shape.")
  for name, values in (("labels", labels), ("predictions", predictions)):
    if values.size and (values.min() < 0 or values.max() >= num_classes):
      raise ValueError(f"{name} must be class ids in [0, {num_classes}), got "
                       f"[{values.min()}, {values.max()}].")
  counts = np.bincount(labels * num_classes + predictions, minlength=num_classes * num_classes)
  return counts.reshape(num_classes, num_classes)


def accuracy(confusion: np.ndarray) -> float:
  """Fraction of examples on the diagonal (0 for an empty matrix)."""
  total = confusion.sum()
  return float(np.trace(confusion) / total) if total else 0.0


def per_class_f1(confusion: np.ndarray) -> np.ndarray:
  """F1 of each class; 0 for a class with no true example and no prediction."""
  tp = np.diag(confusion).astype(np.float64)
  fp = confusion.sum(axis=0) - tp
  fn = confusion.sum(axis=1) - tp
  denominator = 2 * tp + fp + fn
  return np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)


def macro_f1(confusion: np.ndarray, over: str) -> float:
  """Mean per-class F1 over all class ids (`over="all"`) or the true classes (`"present"`)."""
  f1 = per_class_f1(confusion)
  if over == "all":
    return float(f1.mean()) if f1.size else 0.0
  if over == "present":
    present = confusion.sum(axis=1) > 0
    return float(f1[present].mean()) if present.any() else 0.0
  raise ValueError(f"over must be one of {MACRO_F1_VARIANTS}, got {over!r}.")


def write_confusion_matrix(path: str, confusion: np.ndarray, class_names: Sequence[str]) -> None:
  """Writes the matrix atomically: CSV (header of predicted names) for .csv, else JSON."""
  if len(class_names) != confusion.shape[0]:
    raise ValueError(f"{len(class_names)} class names for a {confusion.shape} matrix.")
  if os.path.splitext(path)[1].lower() != ".csv":
    files.write_json(path, {"rows": "true class", "columns": "predicted class",
                            "class_names": list(class_names), "matrix": confusion.tolist()})
    return
  with files.atomic_path(path) as tmp_path:
    with open(tmp_path, "w", encoding="utf-8", newline="") as f:
      writer = csv.writer(f)
      writer.writerow(["true \\ predicted", *class_names])
      for name, row in zip(class_names, confusion.tolist()):
        writer.writerow([name, *row])


def pairwise_auc(positive: np.ndarray, negative: np.ndarray) -> float:
  """The probability that a positive's score exceeds a negative's (ties count 1/2): the area
  under the ROC curve, from every (positive, negative) pair."""
  positive, negative = np.asarray(positive)[:, None], np.asarray(negative)[None]
  return float(np.mean(positive > negative) + 0.5 * np.mean(positive == negative))
