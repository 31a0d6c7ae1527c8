"""ITM groups made in the training step: negatives are other products, same subcategory first
when asked, drawn more often the higher their ITC similarity when mined; the listwise loss; a
retrieval run with mined listwise groups gives the same losses on two replicas as on one."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from kaleido import config as config_lib
from kaleido.tasks import itm_groups
from tests import catalogs

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRODUCTS = np.array([0, 0, 1, 2, 3, 4, 5, 6, 7, 8])  # product 0 has two images
SUBCATEGORIES = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])


def _pool(seed=(1, 2)) -> itm_groups.Pool:
  size = len(PRODUCTS)
  return itm_groups.Pool(inputs={}, product_key=tf.constant(PRODUCTS, tf.int64),
                         subcategory_id=tf.constant(SUBCATEGORIES), own=tf.range(size),
                         seed=tf.constant(seed, tf.int64), available=tf.ones([size], tf.bool))


def test_random_negatives_are_other_products_of_the_same_subcategory_first():
  pool = _pool()
  for draw in range(5):
    seed = tf.constant([draw, 7], tf.int64)
    same, _ = itm_groups.top_negatives(pool, itm_groups.random_scores(pool, 1.0, seed), 2)
    anywhere, valid = itm_groups.top_negatives(pool, itm_groups.random_scores(pool, 0.0, seed),
                                               2)
    for rows in (same.numpy(), anywhere.numpy()):
      assert (PRODUCTS[rows] != PRODUCTS[:, None]).all()  # never the query's own product
    assert valid.numpy().all()
    # Subcategory 0 holds products 0, 1, 2: a query there has 2 other products in it.
    np.testing.assert_array_equal(SUBCATEGORIES[same.numpy()[:4]], np.zeros([4, 2]))
    for query in range(4, 10):  # the others have 2 other products in theirs
      assert (SUBCATEGORIES[same.numpy()[query]] == SUBCATEGORIES[query]).all()


def test_too_few_other_products_leave_negatives_invalid():
  pool = itm_groups.Pool(inputs={}, product_key=tf.constant([0, 0, 1], tf.int64),
                         subcategory_id=tf.constant([0, 0, 0]), own=tf.range(3),
                         seed=tf.constant([0, 0], tf.int64), available=tf.ones([3], tf.bool))
  rows, valid = itm_groups.top_negatives(
      pool, itm_groups.random_scores(pool, 0.0, tf.constant([3, 3], tf.int64)), 2)
  np.testing.assert_array_equal(valid.numpy(), [[1, 0], [1, 0], [1, 1]])
  np.testing.assert_array_equal(rows.numpy()[:2, 0], [2, 2])


def test_mined_negatives_follow_the_similarity():
  pool = _pool()
  similarity = np.zeros([10, 10], np.float32)
  similarity[:, 5] = 3.0  # everyone's likeliest negative: product 4 (row 5)
  similarity[:, 9] = -3.0  # and the least likely: product 8 (row 9)
  counts = np.zeros(10)
  for draw in range(200):
    scores = itm_groups.mined_scores(pool, tf.constant(similarity), tf.constant([draw, 1]))
    rows = itm_groups.top_negatives(pool, scores, 1)[0].numpy()[:, 0]
    assert (PRODUCTS[rows] != PRODUCTS).all()
    counts += np.bincount(rows[[2, 3, 4]], minlength=10)  # queries whose candidates are rows 0-9
  # Per query, softmax weights e^3 : e^0 (x7) : e^-3 over its 9 other rows: 74.1% for row 5,
  # 0.2% for row 9.
  assert 0.7 < counts[5] / counts.sum() < 0.83 and counts[9] < 0.01 * counts.sum()


def test_margin_mined_negatives_come_from_the_shortlist_by_the_cross_encoders_margin():
  """The cross-encoder's margin, not ITC's order, picks among the ITC shortlist; the pairs it
  scores are the query with each shortlisted candidate; nothing outside the shortlist or of the
  query's own product is drawn."""
  rows = np.arange(10)
  pool = itm_groups.Pool(
      inputs={"input_word_ids": tf.constant(rows[:, None]), "input_mask": tf.ones([10, 1]),
              "patch_features": tf.constant(rows[:, None, None] * 1.0, tf.float32),
              "patch_boxes": tf.zeros([10, 1, 5])},
      product_key=tf.constant(PRODUCTS, tf.int64), subcategory_id=tf.constant(SUBCATEGORIES),
      own=tf.range(10), seed=tf.constant([1, 2], tf.int64), available=tf.ones([10], tf.bool))
  similarity = np.tile(np.arange(10, dtype=np.float32), [10, 1])  # ITC prefers higher rows
  scored = []

  def margins(pairs):  # the image (its row) of row 6 fools the cross-encoder, row 9 does not
    texts, images = pairs["input_word_ids"][:, 0], pairs["patch_features"][:, 0, 0]
    scored.append((texts.numpy(), images.numpy()))
    return tf.where(tf.equal(images, 6.0), 5.0, tf.where(tf.equal(images, 9.0), -5.0, 0.0))

  counts = np.zeros(10)
  for draw in range(100):
    scores = itm_groups.margin_scores(pool, tf.constant(similarity), "image", 4, margins,
                                      tf.constant([draw, 3], tf.int64))
    drawn = itm_groups.top_negatives(pool, scores, 1)[0].numpy()[:, 0]
    assert (PRODUCTS[drawn] != PRODUCTS).all()
    counts += np.bincount(drawn[2:6], minlength=10)
  texts, images = scored[0]
  np.testing.assert_array_equal(texts, np.repeat(rows, 4))  # each text query ...
  np.testing.assert_array_equal(images[8:12], [9, 8, 7, 6])  # ... with its ITC top 4 images
  # Queries 2-5 shortlist rows 9, 8, 7, 6: nothing else is drawn, and the margin (5 for row 6,
  # -5 for row 9) decides against ITC's order.
  assert counts[:6].sum() == 0
  assert counts[6] > 0.8 * counts.sum() and counts[9] == 0


def test_listwise_loss_and_first_rank():
  positives = tf.constant([2.0, 0.0])
  negatives = tf.constant([[1.0, -1.0], [0.5, 9.0]])
  valid = tf.constant([[1.0, 1.0], [1.0, 0.0]])  # the 9.0 is no negative
  loss, first = itm_groups.listwise_losses(positives, negatives, valid)
  expected = [np.log(np.exp(2) + np.exp(1) + np.exp(-1)) - 2, np.log(1 + np.exp(0.5))]
  np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-6)
  np.testing.assert_array_equal(first.numpy(), [1.0, 0.0])


def test_one_query_in_every_n_pairs_gets_a_group():
  """group_every = 4 over a batch of 8: rows 0 and 4 are the queries, each with K = 2 negative
  images and 2 negative texts drawn from all 8 rows (never its own product)."""
  products = np.array([0, 0, 1, 2, 3, 4, 5, 6])
  rows = tf.range(8)
  inputs = {"input_word_ids": rows[:, None], "input_mask": tf.ones([8, 1], tf.int32),
            "patch_features": tf.cast(rows, tf.float32)[:, None, None],
            "patch_boxes": tf.zeros([8, 1, 4])}
  batch = {"product_key": tf.constant(products, tf.int64), "subcategory_id": tf.zeros([8], tf.int32),
           "pair_seed": tf.constant([[5, 6]] * 8, tf.int64)}

  def pair_logits(pairs):  # logit 1 encodes the pair as 10 x text row + image row
    code = 10 * pairs["input_word_ids"][:, 0] + tf.cast(pairs["patch_features"][:, 0, 0],
                                                         tf.int32)
    return tf.stack([tf.zeros_like(code), code], axis=1)

  outputs = itm_groups.group_outputs(
      itm_groups.global_pool(inputs, batch), 2, lambda pool, side, seed: itm_groups.random_scores(pool, 0.0, seed),
      pair_logits, every=4)
  codes = outputs["itm_logits"].numpy()[:, 1]
  np.testing.assert_array_equal(outputs["itm_group_labels"].numpy(), [1, 1] + [0] * 8)
  texts, images = codes // 10, codes % 10
  np.testing.assert_array_equal(texts[:2], [0, 4])
  np.testing.assert_array_equal(images[:2], [0, 4])
  np.testing.assert_array_equal(texts[2:6], [0, 0, 4, 4])  # text -> image negatives
  np.testing.assert_array_equal(images[6:], [0, 0, 4, 4])  # image -> text negatives
  negatives = np.concatenate([images[2:6], texts[6:]])
  queries = np.array([0, 0, 4, 4] * 2)
  assert (products[negatives] != products[queries]).all()
  assert len(set(negatives[:2])) == 2 and len(set(negatives[2:4])) == 2  # without replacement


def test_in_step_negatives_need_k_and_mining_needs_the_contrastive_head(tmp_path):
  data = str(tmp_path)  # not read: validation fails first
  for finetune, message in (({"itm_loss": "listwise"}, "negatives_per_positive=K"),
                            ({"negatives_per_positive": 2, "mined_negatives": True},
                             "itc_weight > 0"),
                            ({"negatives_per_positive": 8}, "minus one"),
                            ({"negatives_per_positive": 2, "group_every": 3}, "divide"),
                            ({"subcategory_runs": 9}, "subcategory_runs=9"),
                            ({"negatives_per_positive": 2, "margin_shortlist": 4},
                             "margin_shortlist=4"),
                            ({"negatives_per_positive": 2, "negative_queue": 12},
                             "negative_queue=12")):
    config = config_lib.ExperimentConfig(
        task=config_lib.TaskConfig(name="retrieval",
                                   finetune=config_lib.FinetuneConfig(**finetune)),
        data=config_lib.DataConfig(train_data=data),
        training=config_lib.TrainingConfig(model_dir=data, batch_size=8))
    with pytest.raises(config_lib.ConfigError, match=message):
      config_lib.validate(config)


@pytest.mark.parametrize("task", ["pretrain", "retrieval"])
def test_a_bad_batch_size_is_named_before_the_checks_that_read_it(tmp_path, task):
  config = config_lib.ExperimentConfig(
      task=config_lib.TaskConfig(name=task), data=config_lib.DataConfig(train_data=str(tmp_path)),
      training=config_lib.TrainingConfig(model_dir=str(tmp_path), batch_size=0))
  with pytest.raises(config_lib.ConfigError, match="--batch_size=0"):
    config_lib.validate(config)


def _retrieval_run(data, model_dir, *args, **more_finetune):
  finetune = {"negatives_per_positive": 2, "itm_loss": "listwise", "mined_negatives": True,
              "itc_weight": 0.5, **more_finetune}
  result = subprocess.run(
      [sys.executable, "-m", "tests.distributed_run", f"--data={data}", f"--model_dir={model_dir}",
       "--task=retrieval", f"--finetune={json.dumps(finetune)}", "--steps=2", "--eval_every=2",
       *args], capture_output=True, text=True, cwd=REPO_ROOT, check=False, timeout=400)
  assert result.returncode == 0, result.stderr[-3000:]
  return json.loads(result.stdout.strip().splitlines()[-1])


def test_mined_listwise_groups_from_a_queue_give_the_same_losses_on_two_replicas(tmp_path):
  data = catalogs.prepared_demo(str(tmp_path / "data"), 10, seed=4, num_shards=2)
  # Negatives drawn by the cross-encoder's own margin among each query's ITC top 4 train (two
  # replicas score their own queries' pairs in smaller batches, so near-equal margins of a fresh
  # model may order differently: not compared).
  margin_mined = _retrieval_run(data, str(tmp_path / "margin"), margin_shortlist=4)
  assert all(np.isfinite(value) for value in margin_mined["losses"].values())
  # With a queue of the last global batch (its step-2 pool is twice as large).
  one = _retrieval_run(data, str(tmp_path / "one"), negative_queue=8)
  two = _retrieval_run(data, str(tmp_path / "two"), "--strategy=mirrored", "--logical_cpus=2",
                       negative_queue=8)
  assert set(one["losses"]) == {"total", "itm", "itm_accuracy", "itc", "itc_accuracy"}
  assert np.isfinite(one["losses"]["itm"]) and one["losses"]["itm"] > 0
  for name, value in one["losses"].items():
    assert two["losses"][name] == pytest.approx(value, rel=1e-4, abs=1e-5), name
  for name, value in one["validation"].items():
    assert two["validation"][name] == pytest.approx(value, rel=1e-4, abs=1e-5), name


def test_pretraining_with_in_step_groups(tmp_path):
  """Pre-training with ITM groups: the input pairs all matched, ITM over the groups (K = 2,
  listwise, one query in 2 pairs of each replica), every loss finite, the same on two replicas as
  on one."""
  data = catalogs.prepared_demo(str(tmp_path / "data"), 10, seed=4, num_shards=2)
  runs = []
  for name, extra in (("one", ()), ("two", ("--strategy=mirrored", "--logical_cpus=2"))):
    result = subprocess.run(
        [sys.executable, "-m", "tests.distributed_run", f"--data={data}",
         f"--model_dir={tmp_path / name}", "--steps=2",
         '--pretraining={"itm_negatives_per_positive": 2, "itm_loss": "listwise", '
         '"itm_group_every": 2}', *extra],
        capture_output=True, text=True, cwd=REPO_ROOT, check=False, timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    runs.append(json.loads(result.stdout.strip().splitlines()[-1])["losses"])
  assert all(np.isfinite(value) for value in runs[0].values())
  assert runs[0]["itm"] > 0 and 0 <= runs[0]["itm_accuracy"] <= 1
  for name, value in runs[0].items():
    assert runs[1][name] == pytest.approx(value, rel=1e-4, abs=1e-5), name
