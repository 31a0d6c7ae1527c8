"""Category / subcategory recognition: metrics and confusion matrix from labels and predictions."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from kaleido import errors
from kaleido.metrics import classification as metrics


def evaluate_classification(labels: Sequence[int], predictions: Sequence[int],
                            class_names: Sequence[str]) -> tuple[dict, np.ndarray]:
  """Accuracy (percent), both macro-F1 variants (0..1, as Table 3) and the confusion matrix.

  Examples whose true label is unknown (id < 0: a validation class the training split never had)
  cannot be scored; they are left out and counted as "num_unlabeled".
  """
  labels = np.asarray(labels, dtype=np.int64)
  predictions = np.asarray(predictions, dtype=np.int64)
  known = labels >= 0
  if not known.any():
    raise errors.KaleidoError("No evaluation example has a known class label, so there is "
                              "nothing to score.")
  confusion = metrics.confusion_matrix(labels[known], predictions[known], len(class_names))
  result = {
      "accuracy": 100.0 * metrics.accuracy(confusion),
      "macro_f1_all": metrics.macro_f1(confusion, "all"),
      "macro_f1_present": metrics.macro_f1(confusion, "present"),
      "num_examples": int(known.sum()),
      "num_unlabeled": int((~known).sum()),
      "num_classes": len(class_names),
      "num_classes_present": int((confusion.sum(axis=1) > 0).sum()),
  }
  return result, confusion
