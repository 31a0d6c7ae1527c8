"""The retrieval protocol driver: draws, a model's scores through a callback, Rank@K averaged.

The model side is one callback, so this module needs no model:

  scorer(query_indices, candidate_indices) -> scores
    query_indices: (n,) int64 example indices of the queries.
    candidate_indices: (n, c) int64 example indices of each query's candidates.
    scores: (n, c) float array, higher = better match; ties count against the positive.
  ITR: query i means the IMAGE of example i, candidate j the TEXT of example j; TIR the other way.
  The scorer batches pairs as it likes; it is called with a few queries at a time, so it can
  compute a query's image side once and reuse it for all of its candidates.
"""

from __future__ import annotations

import os
from typing import Callable, Sequence, TextIO

import numpy as np

from kaleido import errors
from kaleido.evaluation import sampling
from kaleido.metrics import retrieval as retrieval_metrics
from kaleido.utils import progress as progress_lib

DIRECTIONS = ("itr", "tir")
Scorer = Callable[[np.ndarray, np.ndarray], np.ndarray]


def get_sample(eval_set: sampling.EvalSet, protocol: str, num_queries: int, num_draws: int,
               seed: int, index_file: str | None) -> tuple[sampling.Sample, list[str]]:
  """The draws: read from `index_file` when it exists, else sampled (and saved there if given).

  Returns the sample and notes for the user (draws read from a file, fewer queries than asked).
  """
  notes = []
  if index_file and os.path.exists(index_file):
    sample = sampling.load_draws(index_file, eval_set, protocol)
    notes.append(f"Draws read from {index_file} ({len(sample.draws)} draws of "
                 f"{sample.num_queries} queries, seed {sample.seed}); --num_queries, --num_draws "
                 "and --seed do not apply.")
  else:
    sample = sampling.sample_draws(eval_set, protocol, num_queries, num_draws, seed)
    if index_file:
      sampling.save_draws(index_file, sample)
  if protocol == "full":
    notes.append(f"Full gallery: every query against all {eval_set.num_products} products, so "
                 "the numbers are not comparable with the paper's sample-100 ones.")
  if sample.num_queries < sample.num_queries_requested:
    notes.append(f"The evaluation set has only {eval_set.num_products} products, so each draw "
                 f"has {sample.num_queries} queries instead of {sample.num_queries_requested}.")
  return sample, notes


def _scores(scorer: Scorer, queries: np.ndarray, candidates: np.ndarray) -> np.ndarray:
  scores = np.asarray(scorer(queries, candidates), dtype=np.float64)
  if scores.shape != candidates.shape:
    raise ValueError(f"The retrieval scorer returned shape {scores.shape} for candidates of "
                     f"shape {candidates.shape}; it must return one score per candidate.")
  return scores


def _draw_ranks(scorer: Scorer, sample: sampling.Sample, eval_set: sampling.EvalSet,
                draw: sampling.Draw, queries_per_call: int,
                progress: progress_lib.Progress) -> np.ndarray:
  """The positive's rank for every query of one draw."""
  ranks = []
  for start in range(0, len(draw.queries), queries_per_call):
    stop = min(start + queries_per_call, len(draw.queries))
    candidates, positives = sampling.candidate_block(sample, eval_set, draw, start, stop)
    scores = _scores(scorer, draw.queries[start:stop], candidates)
    ranks.append(retrieval_metrics.positive_ranks(scores, positives))
    progress.update(stop - start)
  return np.concatenate(ranks)


def evaluate_retrieval(scorer: Scorer, product_ids: Sequence[str],
                       subcategory_ids: Sequence[int], direction: str,
                       protocol: str = "sample100", num_queries: int = 1000, num_draws: int = 5,
                       seed: int = 0, index_file: str | None = None, queries_per_call: int = 8,
                       progress_stream: TextIO | None = None) -> dict:
  """Rank@1/5/10 (percent) of `scorer` under `protocol`, averaged over the draws.

  Args:
    scorer: the callback described in the module docstring, for `direction`.
    product_ids, subcategory_ids: one per evaluation example.
    direction: "itr" or "tir" (names the progress line and the result).
    protocol: "sample100" (1 positive + 100 negatives) or "full" (whole gallery).
    num_queries, num_draws, seed: see `sampling.sample_draws`.
    index_file: JSON of the draws, read when it exists, else written (None: not saved).
    queries_per_call: queries per scorer call.
    progress_stream: where the progress line goes (default stderr).

  Returns:
    {"R@1", "R@5", "R@10": mean over draws (float), "per_draw": [{"R@k": ...}], "protocol",
     "direction", "num_queries", "num_candidates", "num_draws", "seed", "notes": [str]}.
  """
  if direction not in DIRECTIONS:
    raise errors.KaleidoError(f"Unknown retrieval direction {direction!r}; use itr or tir.")
  eval_set = sampling.EvalSet(product_ids, subcategory_ids)
  sample, notes = get_sample(eval_set, protocol, num_queries, num_draws, seed, index_file)
  progress = progress_lib.Progress(len(sample.draws) * sample.num_queries,
                                   f"{direction.upper()} {protocol}", unit="queries",
                                   stream=progress_stream)
  per_draw = []
  for draw in sample.draws:
    ranks = _draw_ranks(scorer, sample, eval_set, draw, max(1, queries_per_call), progress)
    per_draw.append({f"R@{k}": 100.0 * retrieval_metrics.recall_at_k(ranks, k)
                     for k in retrieval_metrics.RANKS})
  progress.close()
  means = {key: float(np.mean([d[key] for d in per_draw])) for key in per_draw[0]}
  return {**means, "per_draw": per_draw, "protocol": protocol, "direction": direction,
          "num_queries": sample.num_queries, "num_candidates": sample.num_candidates,
          "num_draws": len(sample.draws), "seed": sample.seed, "notes": notes}
