"""Tests of the word-prediction pre-training of the patch backbone (--resnet_weights=catalog)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from kaleido import errors
from kaleido.checkpoints import resnet
from kaleido.model import patch_embedder
from kaleido.pretraining import backbone
from tests import catalogs

SPECIAL_IDS = (0, 1, 2, 3, 4)


def test_bag_of_words_is_the_distribution_of_the_distinct_words():
  token_ids = tf.constant([2, 7, 9, 7, 4, 3, 0, 0])  # [CLS] w7 w9 w7 [MASK] [SEP] pad pad
  targets = backbone.bag_of_words(token_ids, 12, SPECIAL_IDS).numpy()
  expected = np.zeros(12, np.float32)
  expected[[7, 9]] = 0.5
  np.testing.assert_array_equal(targets, expected)


def test_bag_of_words_of_a_text_without_words_is_zero():
  targets = backbone.bag_of_words(tf.constant([2, 3, 0]), 6, SPECIAL_IDS).numpy()
  np.testing.assert_array_equal(targets, np.zeros(6, np.float32))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> str:
  return catalogs.prepared_demo(str(tmp_path_factory.mktemp("backbone_words")), 12, seed=8)


def test_word_pretraining_learns_and_writes_weights_the_flag_loads(prepared, tmp_path):
  output = str(tmp_path / "words.h5")
  result = backbone.train_backbone(backbone.BackboneTrainingConfig(
      train_data=prepared, output_path=output, feature_size=64, train_steps=150, batch_size=16,
      learning_rate=3e-3), log=lambda line: None)
  # 12 products' word sets are memorised: the loss falls well below its start.
  assert result.last_loss < 0.8 * result.first_loss

  tf_keras.utils.set_random_seed(0)  # the random start train_backbone also had
  untrained = patch_embedder.build_backbone("small", 16, 64)
  loaded = patch_embedder.build_backbone("small", 16, 64)
  resnet.load_backbone_weights(loaded, resnet.resolve_resnet_weights(output))
  changed = [not np.array_equal(a.numpy(), b.numpy())
             for a, b in zip(untrained.weights, loaded.weights)]
  assert all(changed)


def test_an_unprepared_folder_is_one_clear_error(tmp_path):
  with pytest.raises(errors.KaleidoError, match="manifest"):
    backbone.train_backbone(backbone.BackboneTrainingConfig(
        train_data=str(tmp_path), output_path=str(tmp_path / "x.h5")))
