"""Two-stage ranking: a cheap first-stage score for every candidate, the cross-encoder's ITM
margin for the best `rerank` of them.

`rerank` > 0: the top `rerank` candidates of each query by first-stage score are scored again by
the cross-encoder and ranked by that margin, above all the others (which keep their first-stage
order); 0: the first stage alone; -1 (or at least the number of candidates): the cross-encoder
over every candidate. The re-ranking score is the ITM margin plus `fusion_weight` times the
first-stage score (0, the default: the margin alone, the paper's cross-encoder; the ITC first
stage is a cosine, so the weight is in margin units per unit of cosine).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

WHOLE_GALLERY = -1
# The default of search and of the full-gallery protocol (issue #33): the ITC top 20 re-ranked by
# ITM margin + 20 x cosine. On the demo's development split, over six retrieval fine-tunes with an
# ITC head, it averaged R@1 63.5 / 65.9 (ITR / TIR) against 62.9 / 64.6 for ITC alone and 40.1 /
# 41.2 for the margin alone at the same depth (BUILD_NOTES.md, "Cross-modal matching").
DEFAULT_RERANK = 20
DEFAULT_FUSION_WEIGHT = 20.0
# margins_of(columns) -> margins: columns (Q, R) candidate columns of each query, margins (Q, R).
MarginFn = Callable[[np.ndarray], np.ndarray]


def top_columns(scores: np.ndarray, count: int) -> np.ndarray:
  """(Q, count) columns of each row's `count` highest scores, best first (ties: lower column
  first)."""
  count = min(count, scores.shape[1])
  order = np.argsort(-scores, axis=1, kind="stable")
  return order[:, :count]


def rerank_scores(first_stage: np.ndarray, rerank: int, margins_of: MarginFn,
                  fusion_weight: float = 0.0) -> np.ndarray:
  """(Q, C) float64 scores whose order is the two-stage ranking of the module docstring.

  Re-ranked candidates get their margin plus a per-query offset that puts the lowest of them
  above every first-stage score, so one array serves the ranking metrics (ties still count).
  """
  first_stage = np.asarray(first_stage, np.float64)
  num_candidates = first_stage.shape[1]
  if rerank == 0:
    return first_stage
  if rerank < 0 or rerank >= num_candidates:
    columns = np.broadcast_to(np.arange(num_candidates), first_stage.shape)
    return np.asarray(margins_of(columns), np.float64) + fusion_weight * first_stage
  columns = top_columns(first_stage, rerank)
  margins = (np.asarray(margins_of(columns), np.float64) +
             fusion_weight * np.take_along_axis(first_stage, columns, axis=1))
  offset = first_stage.max(axis=1, keepdims=True) - margins.min(axis=1, keepdims=True) + 1.0
  scores = first_stage.copy()
  np.put_along_axis(scores, columns, margins + offset, axis=1)
  return scores
