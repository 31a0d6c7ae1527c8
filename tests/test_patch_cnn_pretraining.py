"""Tests of the word-prediction pre-training of the patch CNN (--patch_cnn_weights=catalog)."""

from __future__ import annotations

import glob
import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from tensorboard.backend.event_processing import event_accumulator

from kaleido import errors
from kaleido.dataloaders import patch_cnn_words as word_inputs
from kaleido.model import patch_embedder
from kaleido.pretrained import resnet
from kaleido.tasks import patch_cnn_words
from tests import catalogs

SPECIAL_IDS = (0, 1, 2, 3, 4)


def test_bag_of_words_is_the_distribution_of_the_distinct_words():
  token_ids = tf.constant([2, 7, 9, 7, 4, 3, 0, 0])  # [CLS] w7 w9 w7 [MASK] [SEP] pad pad
  targets = word_inputs.bag_of_words(token_ids, 12, SPECIAL_IDS).numpy()
  expected = np.zeros(12, np.float32)
  expected[[7, 9]] = 0.5
  np.testing.assert_array_equal(targets, expected)


def test_bag_of_words_of_a_text_without_words_is_zero():
  targets = word_inputs.bag_of_words(tf.constant([2, 3, 0]), 6, SPECIAL_IDS).numpy()
  np.testing.assert_array_equal(targets, np.zeros(6, np.float32))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> str:
  return catalogs.prepared_demo(str(tmp_path_factory.mktemp("patch_cnn_words")), 12, seed=8)


def _word_losses(model_dir: str) -> list[float]:
  (path,) = glob.glob(os.path.join(model_dir, "train", "events.out.tfevents.*"))
  accumulator = event_accumulator.EventAccumulator(path, size_guidance={"tensors": 0})
  accumulator.Reload()
  return [float(tf.make_ndarray(event.tensor_proto))
          for event in accumulator.Tensors("loss/words")]


def test_word_pretraining_learns_and_writes_weights_the_flag_loads(prepared, tmp_path):
  output = str(tmp_path / "words.h5")
  config = patch_cnn_words.experiment(prepared, str(tmp_path / "run"), train_steps=150,
                                      batch_size=16, learning_rate=3e-3, feature_size=64)
  patch_cnn_words.train_and_export(config, output)
  # 12 products' word sets are memorised: the loss of the last 50 steps is well below the first.
  losses = _word_losses(str(tmp_path / "run"))
  assert len(losses) == 3 and losses[-1] < 0.8 * losses[0], losses

  tf_keras.utils.set_random_seed(0)  # the random start the run also had
  untrained = patch_embedder.build_cnn("small", 16, 64)
  loaded = patch_embedder.build_cnn("small", 16, 64)
  resnet.load_cnn_weights(loaded, resnet.resolve_resnet_weights(output))
  changed = [not np.array_equal(a.numpy(), b.numpy())
             for a, b in zip(untrained.weights, loaded.weights)]
  assert all(changed)


def test_an_unprepared_folder_is_one_clear_error(tmp_path):
  with pytest.raises(errors.KaleidoError, match="manifest"):
    patch_cnn_words.experiment(str(tmp_path), str(tmp_path / "run"))
