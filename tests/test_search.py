"""Two-stage search: the ranking rule, the contrastive objective in retrieval fine-tuning, the
index (resumable, bound to its checkpoint), the search over it against the evaluation model, and
the results page. (tools/search.py itself is a thin flag layer over these, not run here to keep
the suite short.)"""

import glob
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from kaleido import errors
from kaleido.evaluation import encoders as encoders_lib
from kaleido.evaluation import model as evaluation_model
from kaleido.evaluation import two_stage
from kaleido.search import index as index_lib
from kaleido.search import page
from kaleido.search import searcher as searcher_lib
from kaleido.tasks import factory
from kaleido.training import trainer
from tests import catalogs
from tests import test_losses


def test_rerank_puts_the_reranked_first_in_margin_order_and_keeps_the_rest():
  first = np.array([[0.9, 0.1, 0.5, 0.8, 0.2]])
  margins = np.array([[-30.0, 1.0, 2.0, 40.0, 0.5]])
  asked = []

  def margins_of(columns):
    asked.append(columns.copy())
    return np.take_along_axis(margins, columns, axis=1)

  order = lambda scores: np.argsort(-scores[0], kind="stable").tolist()
  assert order(two_stage.rerank_scores(first, 2, margins_of)) == [3, 0, 2, 4, 1]
  np.testing.assert_array_equal(asked[-1], [[0, 3]])  # only the first stage's best two
  assert order(two_stage.rerank_scores(first, 0, margins_of)) == [0, 3, 2, 4, 1]
  assert order(two_stage.rerank_scores(first, -1, margins_of)) == [3, 2, 1, 4, 0]
  assert order(two_stage.rerank_scores(first, 9, margins_of)) == [3, 2, 1, 4, 0]
  # Fused: margin + 100 x first stage (60, 11, 52, 120, 20.5) among the re-ranked.
  assert order(two_stage.rerank_scores(first, 3, margins_of)) == [3, 2, 0, 4, 1]
  assert order(two_stage.rerank_scores(first, 3, margins_of, 100.0)) == [3, 0, 2, 4, 1]
  assert order(two_stage.rerank_scores(first, -1, margins_of, 100.0)) == [3, 0, 2, 4, 1]
  np.testing.assert_allclose(two_stage.rerank_scores(first, -1, margins_of, 100.0),
                             [[60.0, 11.0, 52.0, 120.0, 20.5]])


@pytest.fixture(scope="module", name="setup")
def fixture_setup(tmp_path_factory):
  """A prepared demo and a tiny retrieval run fine-tuned with the contrastive loss."""
  base = tmp_path_factory.mktemp("search")
  data = catalogs.prepared_demo(str(base / "data"), 8, seed=6)
  config = catalogs.tiny_experiment(data, str(base / "run"), task="retrieval", train_steps=2,
                                    finetune={"itc_weight": 0.5},
                                    training={"checkpoint_every": 1})  # ckpt-1 and ckpt-2
  task = factory.create_task(config)
  result = trainer.Trainer(config, task).run()
  return base, data, config, task, result


def test_retrieval_total_is_itm_plus_the_weighted_contrastive_loss(setup):
  _, _, _, task, result = setup
  assert result.losses["total"] == pytest.approx(
      result.losses["itm"] + 0.5 * result.losses["itc"], rel=1e-5)
  batch = next(iter(task.dataset(8, 0, None)))
  model = task.build_model()
  outputs = model(task.model_inputs(model, batch), training=False)
  numpy = {key: np.asarray(value) for key, value in {**batch, **outputs}.items()}
  expected, accuracy = test_losses.np_contrastive(numpy, numpy)
  assert float(task.replica_losses(batch, outputs)["itc"]) == pytest.approx(expected, rel=1e-5)
  assert float(task.replica_metrics(batch, outputs)["itc_accuracy"]) == pytest.approx(accuracy)


def test_contrastive_embeddings_see_only_their_own_side(setup):
  _, _, _, task, _ = setup
  model = task.build_model()
  batch = next(iter(task.dataset(4, 0, None)))
  inputs = task.model_inputs(model, batch)  # the cached patch features of a frozen patch CNN
  swapped_text = {**inputs, "input_word_ids": tf.reverse(inputs["input_word_ids"], [0]),
                  "input_mask": tf.reverse(inputs["input_mask"], [0])}
  swapped_image = {**inputs, "patch_features": tf.reverse(inputs["patch_features"], [0]),
                   "patch_boxes": tf.reverse(inputs["patch_boxes"], [0])}
  base, texts, images = (model(x, training=False) for x in (inputs, swapped_text, swapped_image))
  np.testing.assert_allclose(texts["itc_image"], base["itc_image"], atol=1e-6)
  np.testing.assert_allclose(images["itc_text"], base["itc_text"], atol=1e-6)
  assert not np.allclose(texts["itc_text"], base["itc_text"], atol=1e-4)
  assert not np.allclose(images["itc_image"], base["itc_image"], atol=1e-4)


def test_index_resumes_after_an_interruption_and_refuses_another_build(setup, monkeypatch):
  base, data, _, _, _ = setup
  whole = index_lib.build_index(str(base / "run"), data, str(base / "whole"), chunk_size=4)
  write = index_lib._write_chunk  # pylint: disable=protected-access
  calls = []

  def write_then_fail(*args):
    if calls:
      raise KeyboardInterrupt
    calls.append(1)
    return write(*args)

  monkeypatch.setattr(index_lib, "_write_chunk", write_then_fail)
  with pytest.raises(KeyboardInterrupt):
    index_lib.build_index(str(base / "run"), data, str(base / "resumed"), chunk_size=4)
  with pytest.raises(index_lib.SearchIndexError, match="unfinished"):
    index_lib.load_index(str(base / "resumed"))
  monkeypatch.setattr(index_lib, "_write_chunk", write)
  resumed = index_lib.build_index(str(base / "run"), data, str(base / "resumed"), chunk_size=4)
  assert resumed == whole and whole["num_chunks"] == 7  # 26 images
  a, b = (index_lib.load_index(str(base / name)) for name in ("whole", "resumed"))
  for key in ("image_embeddings", "text_embeddings", "patch_features", "word_ids"):
    np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
  assert a.thumbnails == b.thumbnails and a.thumbnails[0][:2] == b"\xff\xd8"  # JPEG
  with pytest.raises(index_lib.SearchIndexError, match="another chunk size"):
    index_lib.build_index(str(base / "run"), data, str(base / "whole"), chunk_size=5)


def test_index_and_evaluation_read_the_feature_cache_and_equal_the_pixel_path(setup, monkeypatch):
  base, data, _, _, _ = setup
  run = str(base / "run")
  pixels = evaluation_model.load(run, data, patch_features="pixels")
  rows = np.arange(pixels.num_examples)
  expected_margins = pixels.matched_margin(rows, rows[::-1])
  index_lib.build_index(run, data, str(base / "from_pixels"), chunk_size=8,
                        patch_features="pixels")

  def no_embedding(*args):
    raise AssertionError("an image was embedded although its features are cached")

  monkeypatch.setattr(encoders_lib.RetrievalEncoders, "patch_features", no_embedding)
  cached = evaluation_model.load(run, data)  # the run's own setting: a frozen patch CNN, cached
  cached._embed = no_embedding  # pylint: disable=protected-access
  np.testing.assert_allclose(cached.matched_margin(rows, rows[::-1]), expected_margins,
                             atol=1e-3)
  index_lib.build_index(run, data, str(base / "from_cache"), chunk_size=8)
  a, b = (index_lib.load_index(str(base / name)) for name in ("from_pixels", "from_cache"))
  np.testing.assert_allclose(b.patch_features.astype(np.float32),
                             a.patch_features.astype(np.float32), atol=4e-3)
  np.testing.assert_allclose(b.image_embeddings, a.image_embeddings, atol=1e-3)


def test_search_ranks_as_the_evaluation_model_and_refuses_another_checkpoint(setup):
  base, data, _, _, _ = setup
  index_dir = str(base / "whole")
  index_lib.build_index(str(base / "run"), data, index_dir, chunk_size=4)
  searcher = searcher_lib.Searcher(index_dir)
  evaluation = evaluation_model.load(str(base / "run"), data)
  query = 5  # example 5's own text (its product name) as the query
  text = evaluation._examples.texts[query]  # pylint: disable=protected-access
  rows = np.arange(evaluation.num_examples)
  margins = evaluation.matched_margin(np.full_like(rows, query), rows)
  cross = searcher.search_text(text, top_k=len(rows), rerank=-1)
  np.testing.assert_allclose([hit.itm_margin for hit in cross], np.sort(margins)[::-1],
                             atol=1e-4)
  text_embeddings, image_embeddings = evaluation.contrastive_embeddings()
  cosines = image_embeddings @ text_embeddings[query]
  first = searcher.search_text(text, top_k=5, rerank=0)
  assert [hit.row for hit in first] == np.argsort(-cosines, kind="stable")[:5].tolist()
  two = searcher.search_text(text, top_k=5, rerank=3)
  # By default the first stage's best 20 by margin + 20 x cosine (measured best, issue #33).
  shortlist = np.argsort(-cosines, kind="stable")[:two_stage.DEFAULT_RERANK]
  fused = margins[shortlist] + two_stage.DEFAULT_FUSION_WEIGHT * cosines[shortlist]
  assert ([hit.row for hit in searcher.search_text(text, top_k=len(shortlist))] ==
          shortlist[np.argsort(-fused, kind="stable")].tolist())
  reranked = [hit.row for hit in first[:3]]
  assert sorted(hit.row for hit in two[:3]) == sorted(reranked)
  assert [hit.row for hit in two[3:]] == [hit.row for hit in first[3:]]
  with pytest.raises(errors.KaleidoError, match="shows no character"):
    searcher.search_text("\u200b\u3000", top_k=5)
  with pytest.raises(index_lib.SearchIndexError, match="was built with the checkpoint"):
    searcher_lib.Searcher(index_dir, str(base / "run" / "checkpoints" / "ckpt-1"))
  for damage in ("truncated", "zeroed", "deleted"):  # one sentence, not a numpy traceback
    damaged = str(base / f"index_{damage}")
    shutil.copytree(index_dir, damaged)
    chunk = sorted(glob.glob(os.path.join(damaged, "chunk-*")))[1]
    size = os.path.getsize(chunk)
    if damage == "deleted":
      os.remove(chunk)
    elif damage == "truncated":
      os.truncate(chunk, size // 2)
    else:
      with open(chunk, "r+b") as f:
        f.write(b"\0" * size)
    with pytest.raises(index_lib.SearchIndexError, match="is missing or damaged.*build_index"):
      index_lib.load_index(damaged)


def test_image_search_and_the_results_page(setup, tmp_path):
  base, data, _, _, _ = setup
  index_dir = str(base / "whole")
  index_lib.build_index(str(base / "run"), data, index_dir, chunk_size=4)
  searcher = searcher_lib.Searcher(index_dir)
  from kaleido.data import catalogs as catalog_files  # pylint: disable=g-import-not-at-top
  row = next(iter(catalog_files.open_catalog(str(base / "data" / "demo.h5")).read(0, 1)))
  query = searcher.image_query(row.image)
  image_hits = searcher.search_image(query, top_k=3, rerank=4)
  assert len({hit.product_id for hit in image_hits}) == 3  # one text per product
  assert all(hit.itm_margin is not None for hit in image_hits)  # top 3 of 4 re-ranked
  text_hits = searcher.search_text("red shorts", top_k=3, rerank=0)
  assert all(hit.itm_margin is None for hit in text_hits)
  path = str(tmp_path / "hits.html")
  page.write_results_page(path, [page.QueryResults("red shorts", text_hits),
                                 page.QueryResults("query.png", image_hits, query.thumbnail)],
                          searcher.index.thumbnails, "test")
  html = open(path, encoding="utf-8").read()
  assert html.count("data:image/jpeg;base64,") == 3 + 3 + 1  # hits and the query image
  assert html.count('class="hit"') == 6 and "query.png" in html


def test_rerank_errors_counts_each_stages_first_places(setup):
  import re  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  base, data, _, _, _ = setup
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  result = subprocess.run([sys.executable, os.path.join(root, "tools", "rerank_errors.py"),
                           f"--run={base / 'run'}", f"--data={data}", "--depth=3"],
                          capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-2000:]
  counts = {name: int(count) for name, count in re.findall(
      r"(both right|ITC right, margin wrong|margin right, ITC wrong|both wrong) (\d+)",
      result.stdout)}
  # The ITC stage's first places, counted here from the evaluation model's own embeddings.
  model = evaluation_model.load(str(base / "run"), data)
  products = model.product_ids
  rows = np.sort(np.unique(products, return_index=True)[1])
  text, image = model.contrastive_embeddings()
  itc_first = rows[np.argmax(image[rows] @ text[rows].T, axis=1)]
  assert sum(counts.values()) == len(rows)
  assert counts["both right"] + counts["ITC right, margin wrong"] == int(
      (products[itc_first] == products[rows]).sum())
