"""The sample-100 sampler and the full gallery: positives by product id, same subcategory first."""

import json

import numpy as np
import pytest

from kaleido import errors
from kaleido.evaluation import sampling


def _eval_set(sizes=(150, 30), unknown=5):
  """Products p0.. with 1-3 images each; subcategory s has sizes[s] products, then `unknown`
  products with subcategory -1."""
  subcategories = [s for s, n in enumerate(sizes) for _ in range(n)] + [-1] * unknown
  product_ids, subcategory_ids = [], []
  for product, subcategory in enumerate(subcategories):
    for _ in range(1 + product % 3):
      product_ids.append(f"p{product}")
      subcategory_ids.append(subcategory)
  return np.array(product_ids), np.array(subcategory_ids)


def test_sample100_candidates():
  product_ids, subcategory_ids = _eval_set()
  eval_set = sampling.EvalSet(product_ids, subcategory_ids)
  sample = sampling.sample_draws(eval_set, "sample100", num_queries=120, num_draws=3, seed=1)
  assert (sample.num_queries, sample.num_candidates, len(sample.draws)) == (120, 101, 3)
  for draw in sample.draws:
    assert draw.candidates.shape == (120, 101)
    assert (draw.candidates[:, 0] == draw.queries).all()  # the positive: the query's example
    query_products = product_ids[draw.queries]
    assert len(set(query_products)) == 120  # one query per product
    for query, row in zip(draw.queries, draw.candidates):
      negatives = row[1:]
      negative_products = product_ids[negatives]
      assert product_ids[query] not in negative_products
      assert len(set(negative_products)) == 100  # 100 different products
      same = subcategory_ids[negatives] == subcategory_ids[query]
      if subcategory_ids[query] == 0:  # 149 others in the subcategory: all negatives from it
        assert same.all()
      elif subcategory_ids[query] == 1:  # 29 others: all of them, first, then 71 fill-ups
        assert same[:29].all() and not same[29:].any()
        assert set(negative_products[:29]) == set(product_ids[subcategory_ids == 1]) - {
            product_ids[query]}
      else:  # unknown subcategory: not a group, so the 4 other unknowns do not come first
        assert not (subcategory_ids[negatives[:4]] == -1).all()


def test_draws_are_fixed_by_the_seed():
  eval_set = sampling.EvalSet(*_eval_set())
  first = sampling.sample_draws(eval_set, num_queries=50, num_draws=2, seed=3)
  again = sampling.sample_draws(eval_set, num_queries=50, num_draws=2, seed=3)
  other = sampling.sample_draws(eval_set, num_queries=50, num_draws=2, seed=4)
  for a, b in zip(first.draws, again.draws):
    assert (a.queries == b.queries).all() and (a.candidates == b.candidates).all()
  assert not (first.draws[0].candidates == first.draws[1].candidates).all()
  assert not (first.draws[0].candidates == other.draws[0].candidates).all()


def test_every_image_of_a_product_can_be_drawn():
  product_ids, subcategory_ids = _eval_set()
  eval_set = sampling.EvalSet(product_ids, subcategory_ids)
  sample = sampling.sample_draws(eval_set, num_queries=185, num_draws=4, seed=0)
  three_images = np.flatnonzero(product_ids == "p2")  # product 2 has 3 images
  used = {int(q) for d in sample.draws for q in d.queries} | {
      int(c) for d in sample.draws for c in d.candidates.ravel()}
  assert set(three_images.tolist()) <= used


def test_queries_are_capped_at_the_number_of_products():
  eval_set = sampling.EvalSet(*_eval_set())
  sample = sampling.sample_draws(eval_set, num_queries=1000, num_draws=1)
  assert sample.num_queries == eval_set.num_products == 185
  assert sample.num_queries_requested == 1000


def test_too_few_products_is_one_sentence():
  eval_set = sampling.EvalSet(*_eval_set(sizes=(60, 30), unknown=10))  # 100 products
  with pytest.raises(errors.KaleidoError) as error:
    sampling.sample_draws(eval_set, "sample100")
  assert str(error.value) == (
      "The evaluation set has 100 products but the sample100 protocol needs at least 101 (one "
      "positive and 100 negatives from other products), or use --protocol=full.")
  assert sampling.sample_draws(eval_set, "full", num_draws=1).num_candidates == 100


def test_full_gallery_rows():
  product_ids, subcategory_ids = _eval_set()
  eval_set = sampling.EvalSet(product_ids, subcategory_ids)
  sample = sampling.sample_draws(eval_set, "full", num_queries=20, num_draws=1, seed=2)
  draw = sample.draws[0]
  assert draw.candidates.shape == (185,)
  assert len(set(product_ids[draw.candidates])) == 185  # one image of every product
  rows, positives = sampling.candidate_block(sample, eval_set, draw, 5, 12)
  assert rows.shape == (7, 185)
  for query, row, positive in zip(draw.queries[5:12], rows, positives):
    assert row[positive] == query
    others = np.delete(row, positive)
    assert product_ids[query] not in product_ids[others]
    assert len(set(product_ids[row])) == 185


def test_saved_draws_load_identically(tmp_path):
  product_ids, subcategory_ids = _eval_set()
  eval_set = sampling.EvalSet(product_ids, subcategory_ids)
  path = str(tmp_path / "draws.json")
  for protocol in sampling.PROTOCOLS:
    sample = sampling.sample_draws(eval_set, protocol, num_queries=30, num_draws=2, seed=5)
    sampling.save_draws(path, sample)
    loaded = sampling.load_draws(path, eval_set, protocol)
    assert loaded == sampling.Sample(protocol, 5, 30, eval_set.num_examples,
                                     eval_set.fingerprint, loaded.draws)
    for a, b in zip(sample.draws, loaded.draws):
      assert (a.queries == b.queries).all() and (a.candidates == b.candidates).all()
  assert [p.name for p in tmp_path.iterdir()] == ["draws.json"]  # no temporary file left


def test_loading_draws_of_another_set_or_protocol_is_refused(tmp_path):
  product_ids, subcategory_ids = _eval_set()
  eval_set = sampling.EvalSet(product_ids, subcategory_ids)
  path = str(tmp_path / "draws.json")
  sampling.save_draws(path, sampling.sample_draws(eval_set, num_queries=10, num_draws=1))
  with pytest.raises(errors.KaleidoError, match="holds sample100 draws, not full"):
    sampling.load_draws(path, eval_set, "full")
  changed = subcategory_ids.copy()
  changed[0] = 1
  with pytest.raises(errors.KaleidoError, match="another evaluation set"):
    sampling.load_draws(path, sampling.EvalSet(product_ids, changed), "sample100")
  payload = json.loads(open(path, encoding="utf-8").read())
  payload["draws"][0]["candidates"][0][3] = 10**6
  with open(path, "w", encoding="utf-8") as f:
    json.dump(payload, f)
  with pytest.raises(errors.KaleidoError, match="do not fit this evaluation set"):
    sampling.load_draws(path, eval_set, "sample100")
  with open(path, "w", encoding="utf-8") as f:
    f.write("{not json")
  with pytest.raises(errors.KaleidoError, match="Cannot read the retrieval index file"):
    sampling.load_draws(path, eval_set, "sample100")
