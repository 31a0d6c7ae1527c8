"""The retrieval driver with scorer callbacks of known quality, the index file, and the report."""

import io
import json

import numpy as np
import pytest

from kaleido.evaluation import paper_results
from kaleido.evaluation import report
from kaleido.evaluation import retrieval

PRODUCT_IDS = np.array([f"p{i // 2}" for i in range(300)])  # 150 products, 2 images each
SUBCATEGORY_IDS = np.array([(i // 2) % 3 for i in range(300)])


def _same_product(queries, candidates):
  return PRODUCT_IDS[candidates] == PRODUCT_IDS[queries][:, None]


def _perfect(queries, candidates):
  return _same_product(queries, candidates).astype(float)


def _constant(queries, candidates):
  del queries
  return np.full(candidates.shape, 0.5)


def _third(queries, candidates):
  """The positive scores 1; the two candidates after it in the row score 2."""
  scores = _perfect(queries, candidates)
  column = np.argmax(scores, axis=1)
  rows = np.arange(len(queries))
  for step in (1, 2):
    scores[rows, (column + step) % candidates.shape[1]] = 2.0
  return scores


def _evaluate(scorer, **kwargs):
  settings = {"direction": "itr", "num_queries": 40, "num_draws": 2, "seed": 0,
              "progress_stream": io.StringIO(), **kwargs}
  return retrieval.evaluate_retrieval(scorer, PRODUCT_IDS, SUBCATEGORY_IDS, **settings)


@pytest.mark.parametrize("protocol", ["sample100", "full"])
def test_scorers_of_known_quality(protocol):
  expected = {_perfect: (100.0, 100.0, 100.0), _constant: (0.0, 0.0, 0.0),
              _third: (0.0, 100.0, 100.0)}
  for scorer, (r1, r5, r10) in expected.items():
    result = _evaluate(scorer, protocol=protocol, queries_per_call=7)
    assert (result["R@1"], result["R@5"], result["R@10"]) == (r1, r5, r10)
    assert result["num_queries"] == 40 and result["num_draws"] == 2
    assert result["num_candidates"] == (101 if protocol == "sample100" else 150)


def test_results_average_the_draws():
  def first_draw_only(queries, candidates):  # perfect on the first draw, constant afterwards
    calls.append(len(queries))
    return _perfect(queries, candidates) if sum(calls) <= 40 else _constant(queries, candidates)

  calls = []
  result = _evaluate(first_draw_only, num_draws=4)
  assert [d["R@1"] for d in result["per_draw"]] == [100.0, 0.0, 0.0, 0.0]
  assert result["R@1"] == 25.0
  assert sum(calls) == 160 and max(calls) == 8  # every query of every draw, 8 per call


def test_progress_reports_rate_and_eta():
  stream = io.StringIO()
  _evaluate(_perfect, direction="tir", progress_stream=stream)
  assert "TIR sample100 80/80 (100.0%)" in stream.getvalue()
  assert "queries/s ETA" in stream.getvalue()


def test_index_file_repeats_the_draws(tmp_path):
  index_file = str(tmp_path / "draws.json")
  seen = []

  def recording(queries, candidates):
    seen.append(candidates.copy())
    return _constant(queries, candidates)

  first = _evaluate(recording, index_file=index_file, seed=1)
  assert json.loads(open(index_file, encoding="utf-8").read())["seed"] == 1
  written = list(seen)
  seen.clear()
  again = _evaluate(recording, index_file=index_file, seed=2, num_queries=5, direction="tir")
  assert all((a == b).all() for a, b in zip(written, seen)) and len(written) == len(seen)
  assert again["seed"] == 1 and again["num_queries"] == 40 and first["notes"] == []
  assert again["notes"] == [f"Draws read from {index_file} (2 draws of 40 queries, seed 1); "
                            "--num_queries, --num_draws and --seed do not apply."]


def test_fewer_queries_than_asked_and_the_full_gallery_are_noted():
  result = _evaluate(_perfect, num_queries=1000, num_draws=1)
  assert result["num_queries"] == 150
  assert result["notes"] == ["The evaluation set has only 150 products, so each draw has 150 "
                             "queries instead of 1000."]
  assert _evaluate(_perfect, protocol="full")["notes"] == [
      "Full gallery: every query against all 150 products, so the numbers are not comparable "
      "with the paper's sample-100 ones."]


def test_a_scorer_of_the_wrong_shape_is_reported():
  with pytest.raises(ValueError, match="one score per candidate"):
    _evaluate(lambda q, c: np.zeros(len(q)))


def test_the_sums_reproduce_the_papers_tables():
  paper = paper_results.KALEIDO_BERT
  results = report.add_sums({task: dict(paper[task]) for task in
                             ("itr", "tir", "category", "subcategory", "caption")})
  assert results["retrieval"]["SumR"] == pytest.approx(319.52)
  assert results["classification"]["SumCLS"] == pytest.approx(318.14)
  assert results["caption"]["SumCAP"] == pytest.approx(84.0)


def test_table_puts_the_paper_beside_the_measured(tmp_path):
  results = report.add_sums({"itr": {"R@1": 12.5, "num_queries": 40, "notes": ["a note"]},
                             "category": {"accuracy": 91.0, "macro_f1_present": 0.6}})
  lines = report.format_table(results).splitlines()
  assert lines[1].split() == ["itr", "R@1", "12.50", "27.99"]
  assert lines[2].split() == ["category", "accuracy", "91.00", "95.07"]
  assert lines[3].split() == ["category", "macro_f1_present", "0.600", "-"]
  assert lines[-1] == "note: itr: a note"
  path = tmp_path / "out" / "metrics.json"
  report.write_json(str(path), results, {"task": "all"})
  payload = json.loads(path.read_text())
  assert payload["results"]["itr"]["R@1"] == 12.5 and payload["settings"] == {"task": "all"}
  assert payload["paper"] == {"itr": paper_results.KALEIDO_BERT["itr"],
                              "category": paper_results.KALEIDO_BERT["category"]}
