"""Kaleido transforms (the variant table and its rows), CP camouflage, ITM negatives and the whole pre-training pipeline."""

import os

import cv2
import numpy as np
import pytest
import tensorflow as tf

from kaleido import config as config_lib
from kaleido.dataloaders import features
from kaleido.dataloaders import finetuning
from kaleido.dataloaders import pretraining as pretraining_inputs
from kaleido.dataloaders import transforms
from kaleido.masking import agm
from kaleido.text import vocab as vocab_lib
from kaleido.patches import variants
from kaleido.records import manifest as manifest_lib
from kaleido.records import schema

P = 8
SEED = tf.constant([3, 4], tf.int64)
IDS = vocab_lib.SpecialIds(pad_id=0, unk_id=1, cls_id=2, sep_id=3, mask_id=4, vocab_size=50)


def _patches(seed: int = 0, batch: tuple[int, ...] = ()) -> np.ndarray:
  return np.random.default_rng(seed).integers(0, 256, batch + (55, P, P, 3), dtype=np.uint8)


def _choice(grey=(16, 25), cp=7, blank=(30, 41, 54)) -> agm.MaskChoice:
  return agm.MaskChoice(token_positions=tf.zeros([10], tf.int32), num_tokens=tf.constant(0),
                        cp_positions=tf.constant([cp]), grey_positions=tf.constant(grey),
                        blank_positions=tf.constant(blank))


def _image(original: np.ndarray, rotation: int = 0, jigsaw: int = 0, grey=(16, 25),
           greyed: bool = False) -> np.ndarray:
  """The patches `variant_rows` picks from the pixel variant table."""
  rows = variants.variant_rows(tf.constant(rotation), tf.constant(jigsaw), tf.constant(grey),
                               greyed)
  return tf.gather(variants.pixel_variants(tf.constant(original)), rows).numpy()


@pytest.mark.parametrize("rotation", [0, 1, 2, 3])
def test_rotation_label_undoes_the_l1_rotation(rotation):
  original = _patches()
  rotated = _image(original, rotation=rotation)
  np.testing.assert_array_equal(np.rot90(rotated[0], -rotation), original[0])
  np.testing.assert_array_equal(rotated[0], np.rot90(original[0], rotation))  # counter-clockwise
  np.testing.assert_array_equal(rotated[1:], original[1:])


def test_jigsaw_label_inverse_restores_l2():
  original = _patches()
  for label, permutation in enumerate(features.JIGSAW_PERMUTATIONS):
    shuffled = _image(original, jigsaw=label)
    restored = shuffled.copy()
    restored[1 + np.array(permutation)] = shuffled[1:5]
    np.testing.assert_array_equal(restored, original)
    if label:
      assert not np.array_equal(shuffled, original)


def test_greyed_patches_are_grey_and_the_rest_untouched():
  original = _patches()
  greyed = _image(original, greyed=True)
  for index in (16, 25):
    patch = greyed[index]
    assert (patch[..., 0] == patch[..., 1]).all() and (patch[..., 1] == patch[..., 2]).all()
    luminance = original[index].astype(float) @ [0.299, 0.587, 0.114]
    assert np.abs(patch[..., 0] - luminance).max() <= 1.0
  unchanged = np.setdiff1d(np.arange(55), [16, 25])
  np.testing.assert_array_equal(greyed[unchanged], original[unchanged])


def test_variant_table_holds_every_l1_turn_and_every_greyed_l4_patch():
  original = _patches()
  table = variants.pixel_variants(tf.constant(original)).numpy()
  assert table.shape[0] == variants.NUM_VARIANTS == 74
  np.testing.assert_array_equal(table[:55], original)
  for turns in (1, 2, 3):
    np.testing.assert_array_equal(table[54 + turns], np.rot90(original[0], turns))
  for index in range(14, 30):  # L4
    np.testing.assert_array_equal(table[58 + index - 14],
                                  variants.grey(tf.constant(original[index])).numpy())


def test_example_image_labels_and_disabled_tasks():
  original = _patches()
  image = transforms.example_image(variants.pixel_variants(tf.constant(original)), _choice(), config_lib.PretrainingConfig(),
                                   SEED)
  patches = image["patches"].numpy()
  rr, jps = int(image["rr_label"]), int(image["jps_label"])
  np.testing.assert_array_equal(np.rot90(patches[0], -rr), original[0])
  np.testing.assert_array_equal(patches[1:5][np.argsort(features.JIGSAW_PERMUTATIONS[jps])],
                                original[1:5])
  np.testing.assert_array_equal(image["grey_targets"], original[[16, 25]])
  assert (patches[16, ..., 0] == patches[16, ..., 2]).all()
  assert int(image["cp_label"]) == 2  # patch 7 is L3 index 2; its pixels change per batch
  assert image["blank_positions"].numpy().tolist() == [30, 41, 54]
  np.testing.assert_array_equal(patches[5:14], original[5:14])

  config = config_lib.PretrainingConfig(enabled=("amlm", "itm", "b2cm"))
  plain = transforms.example_image(variants.pixel_variants(tf.constant(original)), _choice(), config, SEED)
  np.testing.assert_array_equal(plain["patches"], original)
  assert [int(plain[k]) for k in ("rr_label", "jps_label", "cp_label")] == [0, 0, 0]


def _batch(product_ids, subcategory_ids=None, seed: int = 0) -> dict[str, tf.Tensor]:
  """A hand-made batch whose image side of example i is recognisable: rr_label == i etc."""
  size = len(product_ids)
  rng = np.random.default_rng(seed)
  index = np.arange(size, dtype=np.int32)
  return {
      "product_id": tf.constant([str(p).encode() for p in product_ids]),
      "subcategory_id": tf.constant(subcategory_ids or [0] * size, tf.int32),
      "patches": tf.constant(_patches(seed, (size,))),
      "patch_boxes": tf.constant(rng.random((size, 55, 5)), tf.float32),
      "blank_positions": tf.constant(np.stack([index, index, index], 1)),
      "grey_positions": tf.constant(np.stack([index, index], 1)),
      "grey_targets": tf.constant(rng.integers(0, 256, (size, 2, P, P, 3), dtype=np.uint8)),
      "rr_label": tf.constant(index),
      "jps_label": tf.constant(index),
      "cp_label": tf.constant(rng.integers(0, 9, size, dtype=np.int32)),
      "cp_weight": tf.ones([size]),
      "masked_lm_weights": tf.ones([size, 10]),
  }


def test_camouflage_replaces_exactly_the_labelled_l3_patch_by_another_products():
  product_ids = [10, 10, 11, 12, 13, 13]
  batch = _batch(product_ids)
  original = batch["patches"].numpy()
  for draw in range(5):
    patches = transforms.camouflage(batch, tf.constant([draw, 0], tf.int64))["patches"].numpy()
    for i, label in enumerate(batch["cp_label"].numpy()):
      differs = [j for j in range(55) if not np.array_equal(patches[i, j], original[i, j])]
      assert differs == [5 + label]
      donors = [k for k in range(len(product_ids))
                if np.array_equal(patches[i, 5 + label], original[k, 5 + label])]
      assert len(donors) == 1 and product_ids[donors[0]] != product_ids[i]


def test_camouflage_without_another_product_has_no_weight():
  batch = _batch([7, 7, 7])  # one product only: nothing to camouflage with
  out = transforms.camouflage(batch, tf.constant([0, 0], tf.int64))
  np.testing.assert_array_equal(out["patches"], batch["patches"])
  assert out["cp_weight"].numpy().tolist() == [0.0, 0.0, 0.0]
  mixed = transforms.camouflage(_batch([7, 7, 8]), tf.constant([0, 0], tf.int64))
  assert mixed["cp_weight"].numpy().tolist() == [1.0, 1.0, 1.0]


def _sources(out: dict[str, tf.Tensor], batch: dict[str, tf.Tensor]) -> np.ndarray:
  """Which example's image side each output example shows; checks all image keys agree."""
  sources = out["rr_label"].numpy()
  for key in features.IMAGE_KEYS:
    np.testing.assert_array_equal(out[key], tf.gather(batch[key], sources), err_msg=key)
  return sources


def test_itm_negatives_take_another_products_whole_image_side():
  product_ids = [i // 4 for i in range(64)]  # 16 products, 4 images each
  batch = _batch(product_ids)
  for draw in range(5):
    out = transforms.itm_negatives(batch, config_lib.PretrainingConfig(),
                                   tf.constant([draw, 1], tf.int64))
    label = out["itm_label"].numpy()
    sources = _sources(out, batch)
    negatives = label == 0
    assert negatives.sum() == 32
    assert (sources[~negatives] == np.arange(64)[~negatives]).all()
    assert all(product_ids[s] != product_ids[i] for i, s in enumerate(sources) if negatives[i])
    np.testing.assert_array_equal(out["masked_lm_weights"].numpy()[:, 0], label)


def test_hard_negatives_share_the_subcategory_when_possible():
  product_ids = list(range(12))
  subcategories = [0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 3, 5]  # product 11 is alone in subcategory 5
  batch = _batch(product_ids, subcategories)
  config = config_lib.PretrainingConfig(hard_negatives=True, itm_negative_fraction=1.0)
  for draw in range(5):
    out = transforms.itm_negatives(batch, config, tf.constant([draw, 2], tf.int64))
    sources = _sources(out, batch)
    assert (out["itm_label"].numpy() == 0).all()
    assert all(s != i for i, s in enumerate(sources))
    assert all(subcategories[s] == subcategories[i] for i, s in enumerate(sources[:11]))


def test_a_share_of_same_subcategory_negatives():
  subcategories = tf.constant([i % 8 for i in range(64)])  # 8 products in each subcategory
  products = tf.range(64)
  same = lambda share, draw: (tf.gather(subcategories, transforms.pick_partners(
      products, subcategories, share, tf.constant([draw, 3], tf.int64))[0]) ==
                              subcategories).numpy()
  shares = {share: np.mean([same(share, draw).mean() for draw in range(10)])
            for share in (0.0, 0.5, 1.0)}
  assert shares[1.0] == 1.0 and 0.4 < shares[0.5] < 0.65 and shares[0.0] < 0.3  # 7/63 by chance
  for draw in range(3):  # a share of 1: the best random score within the subcategory, as before
    seed = tf.constant([draw, 3], tf.int64)
    score = tf.random.stateless_uniform([64, 64], seed).numpy()
    score += subcategories.numpy()[:, None] == subcategories.numpy()[None, :]
    np.fill_diagonal(score, -1.0)
    np.testing.assert_array_equal(
        transforms.pick_partners(products, subcategories, 1.0, seed)[0], score.argmax(1))


def test_single_product_batches_stay_matched_and_disabled_tasks_untouched():
  batch = _batch([7, 7, 7, 7])
  out = transforms.batch_transforms(batch, config_lib.PretrainingConfig(), SEED)
  assert out["itm_label"].numpy().tolist() == [1, 1, 1, 1]
  np.testing.assert_array_equal(out["patches"], batch["patches"])
  config = config_lib.PretrainingConfig(enabled=("amlm", "rr"))
  out = transforms.batch_transforms(_batch([1, 2, 3, 4]), config, SEED)
  assert out["itm_label"].numpy().tolist() == [1, 1, 1, 1]
  np.testing.assert_array_equal(out["patches"], _batch([1, 2, 3, 4])["patches"])


@pytest.fixture(name="prepared_folder", scope="module")
def fixture_prepared_folder(tmp_path_factory):
  """6 examples of 3 products, 16 text positions, patch size 8, with alignment pairs."""
  folder = str(tmp_path_factory.mktemp("prepared"))
  rng = np.random.default_rng(0)
  shard = "examples-00000-of-00001.tfrecord"
  with tf.io.TFRecordWriter(os.path.join(folder, shard)) as writer:
    for i in range(6):
      crop = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
      writer.write(schema.serialize(schema.PreparedExample(
          image_id=f"img{i}", product_id=f"p{i // 2}", text="words",
          token_ids=[IDS.cls_id] + list(range(10, 18 + i)) + [IDS.sep_id],
          category_id=0, subcategory_id=i % 2, pose="front",
          crop_jpeg=cv2.imencode(".jpg", crop)[1].tobytes(),
          crop_box=np.array([0.1, 0.1, 0.9, 0.9], np.float32), image_size=(40, 40),
          foreground_found=True, align_token=[1, 2, 3], align_patch=[7, 20, 44],
          align_score=[0.9, 0.8, 0.7])))
  manifest_lib.save(folder, manifest_lib.Manifest(
      num_examples=6, num_skipped=0, skipped_reasons={}, num_patches=55, patch_size=P,
      vocab_file="", vocab_hash="", max_seq_length=16, categories={}, subcategories={},
      schema_version=schema.SCHEMA_VERSION, source="test", text_field="description",
      foreground_method="classical", num_foreground_fallback=0, num_truncated=0,
      num_unknown_labels=0, num_with_alignments=6, num_products=3,
      shards=[{"file": shard, "num_examples": 6}]))
  return folder


def test_pipeline_yields_the_contract_batches(prepared_folder):
  dataset = pretraining_inputs.pretraining_dataset(prepared_folder, 4, config_lib.PretrainingConfig(), IDS, seed=5)
  expected = {
      "input_word_ids": ((4, 16), tf.int32), "input_mask": ((4, 16), tf.int32),
      "patches": ((4, 55, P, P, 3), tf.uint8), "patch_boxes": ((4, 55, 5), tf.float32),
      "blank_positions": ((4, 3), tf.int32), "grey_positions": ((4, 2), tf.int32),
      "grey_targets": ((4, 2, P, P, 3), tf.uint8), "masked_lm_positions": ((4, 10), tf.int32),
      "masked_lm_ids": ((4, 10), tf.int32), "masked_lm_weights": ((4, 10), tf.float32),
      "itm_label": ((4,), tf.int32), "rr_label": ((4,), tf.int32),
      "jps_label": ((4,), tf.int32), "cp_label": ((4,), tf.int32),
      "cp_weight": ((4,), tf.float32), "product_key": ((4,), tf.int64)}
  assert {key: (tuple(spec.shape), spec.dtype) for key, spec in dataset.element_spec.items()
          } == expected
  batches = list(dataset.take(6).as_numpy_iterator())
  for batch in batches:
    assert ((batch["masked_lm_ids"] >= 10) | (batch["masked_lm_weights"] == 0)).all()
    assert (batch["masked_lm_weights"].sum(axis=1) <= 2).all()
    assert (batch["itm_label"] == 0).sum() <= 2  # 2, unless all 4 show one product
    assert ((batch["grey_positions"] >= 14) & (batch["grey_positions"] < 30)).all()
  assert sum((batch["itm_label"] == 0).sum() for batch in batches) >= 4
  # Every epoch draws anew: the same 6 examples are masked and rotated differently.
  drawn = {(tuple(b["masked_lm_positions"][i]), int(b["rr_label"][i]), int(b["jps_label"][i]))
           for b in batches for i in range(4)}
  assert len(drawn) > 12

  context = tf.distribute.InputContext(num_input_pipelines=1, input_pipeline_id=0,
                                       num_replicas_in_sync=2)
  per_replica = pretraining_inputs.pretraining_dataset(prepared_folder, 4, config_lib.PretrainingConfig(), IDS,
                                           seed=5, input_context=context)
  assert per_replica.element_spec["patches"].shape[0] == 2


def test_subcategory_runs_make_batches_of_one_subcategory_runs(prepared_folder):
  def subcategories(runs: int) -> list[list[int]]:
    dataset = finetuning.example_batches(prepared_folder, 4, seed=5, input_context=None,
                                         subcategory_runs=runs)
    return [list(b["subcategory_id"]) for b in dataset.take(32).as_numpy_iterator()]

  # Runs of 2 of one subcategory each (the folder alternates two subcategories example by example).
  in_runs = subcategories(2)
  assert all(batch[0] == batch[1] and batch[2] == batch[3] for batch in in_runs)
  # Shuffled batches mix them within the first two positions at least once. The order also
  # depends on the global seed earlier tests set: 8 batches stayed unmixed for 2 of 40 global
  # seeds, 32 mixed for all 40.
  assert any(batch[0] != batch[1] for batch in subcategories(0))
