"""Rank@K and SumR (paper Table 2) from score matrices.

Ties are ranked pessimistically: the positive's rank is 1 + the number of candidates scoring
strictly higher + the number of OTHER candidates scoring exactly the same. A scorer that gives
every candidate the same score therefore ranks the positive last (Rank@1 = 0), whatever column
the positive sits in, and a model cannot gain from ties.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from kaleido import errors

RANKS = (1, 5, 10)


def positive_ranks(scores: np.ndarray, positive_index: np.ndarray | int) -> np.ndarray:
  """1-based rank of each query's positive among its candidates, ties counted against it.

  Args:
    scores: (num_queries, num_candidates), higher means a better match.
    positive_index: the positive's column per query, (num_queries,) or one int for all.
  """
  scores = np.asarray(scores, dtype=np.float64)
  if scores.ndim != 2 or not scores.shape[1]:
    raise ValueError(f"scores must be (num_queries, num_candidates), got shape {scores.shape}.")
  if np.isnan(scores).any():
    raise errors.KaleidoError(
        f"The retrieval scores contain {int(np.isnan(scores).sum())} NaN values, so no ranking "
        "is defined; check the model (a diverged checkpoint gives NaN).")
  rows = np.arange(scores.shape[0])
  positive_index = np.broadcast_to(np.asarray(positive_index), rows.shape)
  positive = scores[rows, positive_index][:, None]
  higher = (scores > positive).sum(axis=1)
  equal_others = (scores == positive).sum(axis=1) - 1
  return 1 + higher + equal_others


def recall_at_k(ranks: np.ndarray, k: int) -> float:
  """Fraction of queries whose positive ranks within the top `k`."""
  return float(np.mean(np.asarray(ranks) <= k))


def retrieval_metrics(scores: np.ndarray, positive_index: np.ndarray | int,
                      ks: Sequence[int] = RANKS) -> dict[str, float]:
  """{"R@k": percent of queries with the positive in the top k} for each k, as in Table 2."""
  ranks = positive_ranks(scores, positive_index)
  return {f"R@{k}": 100.0 * recall_at_k(ranks, k) for k in ks}


def sum_of_recalls(itr: Mapping[str, float], tir: Mapping[str, float]) -> float:
  """SumR of Table 2: R@1 + R@5 + R@10 of ITR plus the same three of TIR, in percent.

  Kaleido-BERT's 319.52 is exactly the sum of its six recalls (27.99 + 60.09 + 68.37 + 33.88 +
  60.60 + 68.59).
  """
  return float(sum(metrics[f"R@{k}"] for metrics in (itr, tir) for k in RANKS))
