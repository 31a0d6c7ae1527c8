"""Rank@K with ties counted against the positive, and SumR as Table 2 sums it."""

import numpy as np
import pytest

from kaleido import errors
from kaleido.metrics import retrieval


def test_ties_count_against_the_positive():
  scores = np.array([
      [0.9, 0.5, 0.9, 0.1],  # positive 0 ties with column 2: rank 2
      [0.2, 0.8, 0.8, 0.8],  # positive 1 ties with two others: rank 3
      [0.3, 0.3, 0.3, 0.3],  # all equal: last, rank 4
      [0.1, 0.7, 0.2, 0.0],  # positive 1 strictly best: rank 1
  ])
  positives = np.array([0, 1, 3, 1])
  assert retrieval.positive_ranks(scores, positives).tolist() == [2, 3, 4, 1]
  assert retrieval.retrieval_metrics(scores, positives, ks=(1, 2, 3, 4)) == {
      "R@1": 25.0, "R@2": 50.0, "R@3": 75.0, "R@4": 100.0}


def test_a_constant_scorer_never_retrieves_the_positive():
  scores = np.zeros((7, 101))
  for column in (0, 50, 100):
    assert retrieval.retrieval_metrics(scores, column) == {"R@1": 0.0, "R@5": 0.0, "R@10": 0.0}


def test_strictly_higher_candidates_push_the_positive_down():
  scores = np.tile(np.arange(101, dtype=float)[::-1], (3, 1))  # column k has the (k+1)-th score
  ranks = retrieval.positive_ranks(scores, np.array([0, 4, 10]))
  assert ranks.tolist() == [1, 5, 11]
  assert retrieval.retrieval_metrics(scores, np.array([0, 4, 10])) == pytest.approx(
      {"R@1": 100 / 3, "R@5": 200 / 3, "R@10": 200 / 3})


def test_nan_scores_are_refused():
  with pytest.raises(errors.KaleidoError, match="NaN"):
    retrieval.positive_ranks(np.array([[np.nan, 0.0, 0.0]]), 0)


def test_sum_r_is_the_six_recalls_of_table_2():
  itr = {"R@1": 27.99, "R@5": 60.09, "R@10": 68.37}
  tir = {"R@1": 33.88, "R@5": 60.60, "R@10": 68.59}
  assert retrieval.sum_of_recalls(itr, tir) == pytest.approx(319.52)
