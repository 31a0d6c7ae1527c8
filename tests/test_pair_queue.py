"""The queue of earlier pairs: it keeps the newest global batches in order, widens a pool with the
rows it holds (their text cut to the pool's), and never offers an empty slot, a text longer than
the pool's, or a query's own product."""

import numpy as np
import tensorflow as tf

from kaleido import config as config_lib
from kaleido.tasks import itm_groups
from kaleido.tasks import pair_queue

MODEL = config_lib.KaleidoBertConfig(max_seq_length=8, num_patches=2, feature_size=3,
                                     contrastive_dim=2)


def _pool(products, lengths, text_length: int) -> itm_groups.Pool:
  """A global batch whose row r carries the code products[r] in its text, features and
  embeddings, and a text of lengths[r] positions."""
  products = np.asarray(products)
  size = len(products)
  mask = (np.arange(text_length)[None, :] < np.asarray(lengths)[:, None]).astype(np.int32)
  code = products.astype(np.float32)
  return itm_groups.Pool(
      inputs={"input_word_ids": tf.constant(mask * products[:, None], tf.int32),
              "input_mask": tf.constant(mask),
              "patch_features": tf.constant(np.tile(code[:, None, None], [1, 2, 3])),
              "patch_boxes": tf.zeros([size, 2, 5])},
      product_key=tf.constant(products, tf.int64), subcategory_id=tf.zeros([size], tf.int32),
      own=tf.range(size), seed=tf.constant([1, 2], tf.int64),
      available=tf.ones([size], tf.bool),
      embeddings={"itc_text": tf.constant(np.stack([code, -code], 1)),
                  "itc_image": tf.constant(np.stack([-code, code], 1))})


def test_the_queue_keeps_the_newest_batches_and_widens_pools_with_them():
  queue = pair_queue.PairQueue(8, MODEL)  # two global batches of 4
  first = _pool([10, 11, 12, 13], [2, 3, 4, 4], 4)
  widened = queue.widen(first)
  np.testing.assert_array_equal(widened.available.numpy(), [True] * 4 + [False] * 8)
  queue.push(first)
  queue.push(_pool([20, 21, 22, 23], [2, 2, 2, 2], 4))
  queue.push(_pool([30, 31, 32, 33], [5, 2, 2, 2], 8))  # the first batch drops out
  widened = queue.widen(_pool([40, 11, 41, 42], [3, 3, 3, 3], 4))
  rows = widened.product_key.numpy()
  np.testing.assert_array_equal(rows, [40, 11, 41, 42, 30, 31, 32, 33, 20, 21, 22, 23])
  # Product 30's text (5 positions) is longer than this pool's 4; the others fit, cut to 4.
  np.testing.assert_array_equal(widened.available.numpy(), [True] * 4 + [False] + [True] * 7)
  assert widened.inputs["input_word_ids"].shape == (12, 4)
  np.testing.assert_array_equal(widened.inputs["input_word_ids"].numpy()[5], [31, 31, 0, 0])
  np.testing.assert_array_equal(widened.inputs["patch_features"].numpy()[:, 0, 0], rows)
  np.testing.assert_array_equal(widened.embeddings["itc_text"].numpy()[:, 0], rows)
  np.testing.assert_array_equal(widened.own.numpy(), [0, 1, 2, 3])  # queries: the batch's own
  # A pool with the full 8 positions takes product 30 as well.
  assert queue.widen(_pool([40], [3], 8)).available.numpy()[1]


def test_queued_negatives_are_drawn_but_never_empty_unfitting_or_the_querys_product():
  queue = pair_queue.PairQueue(8, MODEL)
  queue.push(_pool([11, 12, 13, 14], [2, 2, 6, 2], 8))  # product 13's text does not fit in 4
  widened = queue.widen(_pool([11, 20, 21, 22], [2, 2, 2, 2], 4))
  drawn = set()
  for draw in range(30):
    scores = itm_groups.random_scores(widened, 0.0, tf.constant([draw, 5], tf.int64))
    rows, valid = itm_groups.top_negatives(widened, scores, 5)
    assert valid.numpy().all()  # 4 + 4 rows, 1 unfitting, 1 or 2 of the query's product
    products = widened.product_key.numpy()[rows.numpy()]
    assert (products != widened.product_key.numpy()[:4, None]).all()
    assert 13 not in products and (rows.numpy() < 8).all()  # nothing unfitting or empty
    drawn |= set(products.ravel().tolist())
  assert {12, 14} <= drawn  # queued rows are drawn
  # Query 11 (row 0) has 5 other available products: 20, 21, 22, 12, 14; a sixth is invalid.
  _, valid = itm_groups.top_negatives(widened, itm_groups.random_scores(
      widened, 0.0, tf.constant([0, 0], tf.int64)), 6)
  np.testing.assert_array_equal(valid.numpy()[0], [1, 1, 1, 1, 1, 0])
