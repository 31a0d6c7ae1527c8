"""Which candidates each retrieval query is ranked against: sample-100 and the full gallery.

An evaluation example is one image with its product's text; a product has one or more examples
(poses), all with the same text. Queries and candidates are example indices:
- A query is a product: each draw picks `num_queries` distinct products at random and one random
  image (example) of each. ITR ranks texts for that example's image, TIR ranks images for its text.
- The positive is the query's own example (its text for ITR, its image for TIR), matched by
  product id; no other example of the query's product is ever a candidate.
- sample100: the negatives are 100 other products, one random example each, drawn from the
  query's subcategory and filled up at random from other subcategories when it has fewer than 100
  other products. Products with an unknown subcategory (id < 0) share a subcategory with no one,
  so their negatives are all fill-up.
- full: every query is ranked against the whole gallery, one random example of every product (the
  query's own product represented by the query's example).
Draw d uses `numpy.random.default_rng((seed, d))`, so a seed fixes every draw; the draws can be
saved to JSON and loaded to repeat a run exactly.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Sequence

import numpy as np

from kaleido import errors
from kaleido.utils import files

PROTOCOLS = ("sample100", "full")
NUM_NEGATIVES = 100
_FORMAT = "kaleido-retrieval-draws"
_VERSION = 1


class EvalSet:
  """The products of an evaluation set: product codes, their examples and subcategories."""

  def __init__(self, product_ids: Sequence[str], subcategory_ids: Sequence[int]):
    product_ids = np.asarray([p.decode() if isinstance(p, bytes) else str(p) for p in product_ids])
    subcategory_ids = np.asarray(subcategory_ids, dtype=np.int64)
    if product_ids.shape != subcategory_ids.shape or product_ids.ndim != 1:
      raise ValueError(f"{product_ids.shape} product ids but {subcategory_ids.shape} "
                       "subcategory ids; give one of each per example.")
    # codes[i] = index of example i's product in the sorted unique product ids.
    _, first, self.codes = np.unique(product_ids, return_index=True, return_inverse=True)
    self.num_examples = len(product_ids)
    self.num_products = len(first)
    self.product_subcategory = subcategory_ids[first]  # that of the product's first example
    self._order = np.argsort(self.codes, kind="stable")
    self._counts = np.bincount(self.codes, minlength=self.num_products)
    self._starts = np.concatenate([[0], np.cumsum(self._counts)[:-1]]).astype(np.int64)
    digest = hashlib.sha256()
    for product, subcategory in zip(product_ids.tolist(), subcategory_ids.tolist()):
      digest.update(f"{product}\t{subcategory}\n".encode())
    self.fingerprint = digest.hexdigest()

  def random_examples(self, products: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random example index of each product code in `products`."""
    products = np.asarray(products, dtype=np.int64)
    offsets = rng.integers(0, self._counts[products])
    return self._order[self._starts[products] + offsets]


@dataclasses.dataclass(frozen=True, eq=False)
class Draw:
  """One random draw.

  queries: (num_queries,) example index of each query.
  candidates: sample100: (num_queries, 101) example indices, column 0 the positive (= the
    query's example); full: (num_products,) the gallery, one example per product code.
  """
  queries: np.ndarray
  candidates: np.ndarray


@dataclasses.dataclass(frozen=True)
class Sample:
  """The draws of one evaluation and the settings that made them."""
  protocol: str
  seed: int
  num_queries_requested: int
  num_examples: int
  fingerprint: str
  draws: tuple[Draw, ...]

  @property
  def num_queries(self) -> int:
    return len(self.draws[0].queries)

  @property
  def num_candidates(self) -> int:
    return self.draws[0].candidates.shape[-1]


def check_size(eval_set: EvalSet, protocol: str) -> None:
  """A one-sentence error when the set has too few products for the protocol."""
  if protocol not in PROTOCOLS:
    raise errors.KaleidoError(f"Unknown retrieval protocol {protocol!r}; use one of "
                              f"{', '.join(PROTOCOLS)}.")
  needed = NUM_NEGATIVES + 1 if protocol == "sample100" else 2
  if eval_set.num_products < needed:
    hint = (" (one positive and 100 negatives from other products), or use --protocol=full"
            if protocol == "sample100" else "")
    raise errors.KaleidoError(
        f"The evaluation set has {eval_set.num_products} products but the {protocol} protocol "
        f"needs at least {needed}{hint}.")


def _negatives(eval_set: EvalSet, by_subcategory: dict[int, np.ndarray], product: int,
               rng: np.random.Generator) -> np.ndarray:
  """100 distinct product codes other than `product`: its subcategory first, then fill-up."""
  # Unknown subcategories (< 0) are not in `by_subcategory`: all their negatives are fill-up.
  same = by_subcategory.get(int(eval_set.product_subcategory[product]), np.empty(0, np.int64))
  same = same[same != product]
  if len(same) >= NUM_NEGATIVES:
    return rng.choice(same, NUM_NEGATIVES, replace=False)
  others = np.ones(eval_set.num_products, bool)
  others[same] = False
  others[product] = False
  fill = rng.choice(np.flatnonzero(others), NUM_NEGATIVES - len(same), replace=False)
  return np.concatenate([same, fill])


def _draw(eval_set: EvalSet, protocol: str, num_queries: int,
          rng: np.random.Generator) -> Draw:
  query_products = rng.choice(eval_set.num_products, num_queries, replace=False)
  queries = eval_set.random_examples(query_products, rng)
  if protocol == "full":
    return Draw(queries, eval_set.random_examples(np.arange(eval_set.num_products), rng))
  products = np.arange(eval_set.num_products)
  by_subcategory = {int(s): products[eval_set.product_subcategory == s]
                    for s in np.unique(eval_set.product_subcategory) if s >= 0}
  negatives = np.stack([
      eval_set.random_examples(_negatives(eval_set, by_subcategory, int(p), rng), rng)
      for p in query_products])
  return Draw(queries, np.concatenate([queries[:, None], negatives], axis=1))


def sample_draws(eval_set: EvalSet, protocol: str = "sample100", num_queries: int = 1000,
                 num_draws: int = 5, seed: int = 0) -> Sample:
  """Draws `num_draws` sets of queries (capped at the number of products) and candidates."""
  check_size(eval_set, protocol)
  if num_queries < 1 or num_draws < 1:
    raise errors.KaleidoError(f"num_queries={num_queries} and num_draws={num_draws} must both be "
                              "at least 1.")
  count = min(num_queries, eval_set.num_products)
  draws = tuple(_draw(eval_set, protocol, count, np.random.default_rng((seed, d)))
                for d in range(num_draws))
  return Sample(protocol, seed, num_queries, eval_set.num_examples, eval_set.fingerprint, draws)


def candidate_block(sample: Sample, eval_set: EvalSet, draw: Draw, start: int,
                    stop: int) -> tuple[np.ndarray, np.ndarray]:
  """Candidates of queries start..stop-1 of `draw` and the column of each one's positive.

  For the full gallery, a query's row is the gallery with its product's entry replaced by the
  query's own example, so the positive sits at the column of the query's product code.
  """
  queries = draw.queries[start:stop]
  if sample.protocol == "sample100":
    return draw.candidates[start:stop], np.zeros(len(queries), np.int64)
  positives = eval_set.codes[queries]
  rows = np.tile(draw.candidates, (len(queries), 1))
  rows[np.arange(len(queries)), positives] = queries
  return rows, positives


def save_draws(path: str, sample: Sample) -> None:
  """Writes the draws as compact JSON, atomically."""
  payload = {
      "format": _FORMAT, "version": _VERSION, "protocol": sample.protocol, "seed": sample.seed,
      "num_queries_requested": sample.num_queries_requested,
      "num_examples": sample.num_examples, "fingerprint": sample.fingerprint,
      "draws": [{"queries": d.queries.tolist(), "candidates": d.candidates.tolist()}
                for d in sample.draws]}
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  with files.atomic_path(path) as tmp_path:
    with open(tmp_path, "w", encoding="utf-8") as f:
      json.dump(payload, f, separators=(",", ":"))


def _read_payload(path: str) -> dict:
  try:
    payload = files.read_json(path)
  except (OSError, ValueError) as error:
    raise errors.KaleidoError(f"Cannot read the retrieval index file {path!r} ({error}); delete "
                              "it to sample new draws.") from error
  keys = {"protocol", "seed", "num_queries_requested", "fingerprint", "draws"}
  if not isinstance(payload, dict) or payload.get("format") != _FORMAT or payload.get(
      "version") != _VERSION or not keys <= set(payload):
    raise errors.KaleidoError(f"{path!r} is not a version-{_VERSION} retrieval index file "
                              "written by this project; delete it to sample new draws.")
  return payload


def _check_draw(draw: Draw, protocol: str, eval_set: EvalSet) -> bool:
  """True when the draw's shapes and indices fit the protocol and the evaluation set."""
  width = NUM_NEGATIVES + 1 if protocol == "sample100" else eval_set.num_products
  shape_ok = (draw.queries.ndim == 1 and len(draw.queries) > 0 and
              draw.candidates.shape[-1] == width and
              (draw.candidates.ndim == 1 if protocol == "full" else
               draw.candidates.shape == (len(draw.queries), width)))
  return bool(shape_ok and draw.candidates.size and 0 <= draw.queries.min() and
              draw.queries.max() < eval_set.num_examples and 0 <= draw.candidates.min() and
              draw.candidates.max() < eval_set.num_examples)


def load_draws(path: str, eval_set: EvalSet, protocol: str) -> Sample:
  """Reads draws written by `save_draws` and checks they belong to this set and protocol."""
  payload = _read_payload(path)
  if payload["protocol"] != protocol:
    raise errors.KaleidoError(f"The retrieval index file {path!r} holds {payload['protocol']} "
                              f"draws, not {protocol}; pass another --index_file.")
  if payload["fingerprint"] != eval_set.fingerprint:
    raise errors.KaleidoError(
        f"The retrieval index file {path!r} was sampled from another evaluation set (its "
        "product and subcategory ids differ); pass another --index_file.")
  try:
    draws = tuple(Draw(np.asarray(d["queries"], np.int64), np.asarray(d["candidates"], np.int64))
                  for d in payload["draws"])
  except (KeyError, TypeError, ValueError) as error:
    raise errors.KaleidoError(f"The retrieval index file {path!r} is damaged ({error}); delete "
                              "it to sample new draws.") from error
  if not draws or not all(_check_draw(d, protocol, eval_set) for d in draws):
    raise errors.KaleidoError(f"The retrieval index file {path!r} has draws that do not fit "
                              "this evaluation set; delete it to sample new draws.")
  return Sample(protocol, int(payload["seed"]), int(payload["num_queries_requested"]),
                eval_set.num_examples, eval_set.fingerprint, draws)
