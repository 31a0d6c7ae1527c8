"""Tests of loading patch CNN weights (ResNet-50 .h5 files, project checkpoints) into the patch
embedder."""

from __future__ import annotations


import h5py
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from kaleido import config as config_lib
from kaleido import errors
from kaleido.model import kaleido_bert
from kaleido.model import patch_embedder
from kaleido.pretrained import resnet

PATCH_SIZE = 64


def seeded_cnn(name: str, seed: int, patch_size: int = PATCH_SIZE,
               feature_size: int = 2048) -> tf_keras.Model:
  """A patch CNN with seeded random weights, batch-norm statistics included."""
  tf_keras.utils.set_random_seed(seed)
  cnn = patch_embedder.build_cnn(name, patch_size, feature_size)
  rng = np.random.default_rng(seed)
  for variable in cnn.non_trainable_weights:  # moving means and variances
    variable.assign(rng.uniform(0.5, 1.5, variable.shape).astype(np.float32))
  return cnn


def loaded_embedder(cnn: str, patch_size: int, feature_size: int,
                    weights: str) -> patch_embedder.PatchEmbedder:
  """A patch embedder with `weights` loaded into its CNN, as the tasks' initialisation
  does."""
  embedder = patch_embedder.PatchEmbedder(cnn, patch_size, feature_size)
  resnet.load_cnn_weights(embedder.cnn, weights)
  return embedder


def assert_same_weights(a: tf_keras.Model, b: tf_keras.Model) -> None:
  assert len(a.weights) == len(b.weights)
  for x, y in zip(a.weights, b.weights):
    np.testing.assert_array_equal(x.numpy(), y.numpy(), err_msg=x.name)


@pytest.fixture(scope="module")
def resnet_file(tmp_path_factory) -> tuple[tf_keras.Model, str]:
  cnn = seeded_cnn("resnet50", seed=5)
  path = str(tmp_path_factory.mktemp("resnet") / resnet.IMAGENET_FILE)
  cnn.save_weights(path)
  return cnn, path


def test_resnet50_h5_loads_into_the_patch_embedder(resnet_file):
  source, path = resnet_file
  tf_keras.utils.set_random_seed(6)  # a different random start, overwritten by the file
  embedder = loaded_embedder("resnet50", PATCH_SIZE, 2048, resnet.resolve_resnet_weights(path))
  assert_same_weights(embedder.cnn, source)

  patches = np.random.default_rng(0).integers(0, 256, (2, 3, PATCH_SIZE, PATCH_SIZE, 3), np.uint8)
  pixels = patch_embedder.preprocess("resnet50", tf.reshape(tf.cast(patches, tf.float32),
                                                            [-1, PATCH_SIZE, PATCH_SIZE, 3]))
  expected = source(pixels, training=False).numpy().reshape(2, 3, -1)
  np.testing.assert_allclose(embedder(patches).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_imagenet_is_never_downloaded(tmp_path, monkeypatch):
  monkeypatch.setenv("HOME", str(tmp_path))
  with pytest.raises(errors.KaleidoError, match="cannot be downloaded here") as error:
    resnet.resolve_resnet_weights("imagenet")
  assert resnet.IMAGENET_URL in str(error.value) and "\n" not in str(error.value)
  cached = tmp_path / ".keras" / "models" / resnet.IMAGENET_FILE
  cached.parent.mkdir(parents=True)
  cached.write_bytes(b"")
  assert resnet.resolve_resnet_weights("imagenet") == str(cached)
  assert resnet.resolve_resnet_weights("random") is None
  with pytest.raises(errors.KaleidoError, match=f"do not exist; .*{resnet.IMAGENET_FILE}"):
    resnet.resolve_resnet_weights(str(tmp_path / "missing.h5"))


def test_weights_of_another_cnn_are_refused(resnet_file, tmp_path):
  _, path = resnet_file
  with pytest.raises(errors.KaleidoError, match="no weights for 5 layers of the small CNN"):
    loaded_embedder("small", 16, 2048, path)
  not_keras = str(tmp_path / "data.h5")
  with h5py.File(not_keras, "w") as f:
    f.create_dataset("x", data=np.zeros(3))
  with pytest.raises(errors.KaleidoError, match="not a Keras weights file"):
    loaded_embedder("small", 16, 2048, not_keras)


def test_patch_cnn_from_a_training_checkpoint(tmp_path):
  model_config = config_lib.KaleidoBertConfig(vocab_size=50, hidden_size=16, num_layers=1,
                                              num_heads=2, intermediate_size=32, patch_size=16,
                                              patch_cnn="small")
  tf_keras.utils.set_random_seed(7)
  model = kaleido_bert.build_pretrainer(model_config)
  source = model.backbone.patch_embedder.cnn
  for variable in source.weights:
    variable.assign(variable + 0.1)
  checkpoint = tf.train.Checkpoint(model=model, step=tf.Variable(3))  # as the trainer saves
  tf.train.CheckpointManager(checkpoint, str(tmp_path / "checkpoints"), max_to_keep=1).save()
  tf.train.Checkpoint(model=model.backbone).write(str(tmp_path / "bare" / "ckpt"))
  names = [name for name, _ in tf.train.list_variables(str(tmp_path / "bare" / "ckpt"))]
  assert any(name.startswith("model/patch_embedder/cnn/") for name in names)

  for path in (str(tmp_path), str(tmp_path / "bare" / "ckpt")):
    assert_same_weights(loaded_embedder("small", 16, 2048, path).cnn, source)
  with pytest.raises(errors.KaleidoError, match="does not fit the small CNN"):
    loaded_embedder("small", 16, 64, str(tmp_path))
  with pytest.raises(errors.KaleidoError, match="neither a Keras .h5 weights file nor"):
    loaded_embedder("small", 16, 2048, str(tmp_path / "bare"))
