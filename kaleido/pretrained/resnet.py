"""Weights of the patch embedder's CNN (ResNet-50, or the small one) from files on disk.

Accepted: a Keras .h5 weights file holding every weighted layer of the CNN by name (the
standard ImageNet file resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5, the file with the
top, or `cnn.save_weights("x.h5")`), or a TensorFlow checkpoint saved by the project that
contains a patch embedder (a train.py model_dir, its checkpoints/ folder or one checkpoint
prefix). Nothing is downloaded: `imagenet`
is answered from the Keras cache or with how to pass the file.
"""

from __future__ import annotations

import os
import re

import h5py
import tensorflow as tf
import tf_keras

from kaleido import errors
from kaleido.model import patch_embedder as patch_embedder_lib

IMAGENET = "imagenet"
IMAGENET_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
IMAGENET_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/resnet/"
                + IMAGENET_FILE)
# The patch embedder's CNN inside a checkpoint: `.../patch_embedder/cnn/`.
_CNN_EDGE = re.compile(r"(?:^|/)patch_embedder/cnn/")
_VALUE = "/.ATTRIBUTES/VARIABLE_VALUE"


def resolve_resnet_weights(value: str) -> str | None:
  """A weights path for the patch embedder: "" or "random" -> None (random initialisation),
  "imagenet" -> the Keras cache's copy of the ImageNet file, else an existing path."""
  if value in ("", "random"):
    return None
  if value == IMAGENET:
    cached = os.path.join(os.path.expanduser("~"), ".keras", "models", IMAGENET_FILE)
    if os.path.isfile(cached):
      return cached
    raise errors.KaleidoError(
        f"The ImageNet ResNet-50 weights cannot be downloaded here (no network); fetch "
        f"{IMAGENET_URL} on a connected machine, copy it over and pass its path instead of "
        f"{IMAGENET}.")
  if not os.path.exists(value) and not os.path.isfile(value + ".index"):
    raise errors.KaleidoError(
        f"The CNN weights {value!r} given to --patch_cnn_weights do not exist; for the paper's "
        f"ImageNet ResNet-50 download Keras' {IMAGENET_FILE} ({IMAGENET_URL}) and pass its path, "
        "or pass a checkpoint of this project.")
  return value


def load_cnn_weights(cnn: tf_keras.Model, path: str) -> None:
  """Loads `path` (.h5 weights file or TensorFlow checkpoint) into the CNN `cnn`."""
  if os.path.isfile(path) and h5py.is_hdf5(path):
    _load_h5(cnn, path)
  else:
    _restore_checkpoint(cnn, _checkpoint_prefix(path))


def _h5_layer_names(path: str) -> set[str]:
  with h5py.File(path, "r") as f:
    group = f["model_weights"] if "layer_names" not in f.attrs and "model_weights" in f else f
    names = group.attrs.get("layer_names")
    if names is None:
      raise errors.KaleidoError(f"{path!r} is not a Keras weights file (it has no layer_names); "
                                f"pass {IMAGENET_FILE} or a file written by save_weights.")
    return {name.decode("utf-8") if isinstance(name, bytes) else str(name) for name in names}


def _load_h5(cnn: tf_keras.Model, path: str) -> None:
  in_file = _h5_layer_names(path)
  missing = [layer.name for layer in cnn.layers if layer.weights and layer.name not in in_file]
  if missing:
    raise errors.KaleidoError(
        f"{path!r} has no weights for {len(missing)} layers of the {cnn.name} CNN "
        f"(first: {missing[0]!r}); pass weights of that CNN, e.g. {IMAGENET_FILE} for "
        "resnet50.")
  try:
    cnn.load_weights(path, by_name=True)
  except ValueError as error:
    raise errors.KaleidoError(
        f"The weights in {path!r} do not fit the {cnn.name} CNN "
        f"({str(error).splitlines()[0][:200]}); pass weights of that CNN.") from error


def _checkpoint_prefix(path: str) -> str:
  """A checkpoint prefix, or the latest checkpoint of a folder or of its checkpoints/ folder."""
  if os.path.isfile(path + ".index"):
    return path
  for folder in (path, os.path.join(path, "checkpoints")):
    latest = tf.train.latest_checkpoint(folder) if os.path.isdir(folder) else None
    if latest:
      return latest
  raise errors.KaleidoError(f"{path!r} is neither a Keras .h5 weights file nor a TensorFlow "
                            "checkpoint (prefix, or folder with a checkpoint).")


def _cnn_path(prefix: str) -> list[str]:
  """The object path of the one patch embedder CNN in a checkpoint, e.g.
  ["model", "backbone", "patch_embedder", "cnn"]."""
  paths = set()
  for name, _ in tf.train.list_variables(prefix):
    match = _CNN_EDGE.search(name)
    if match and name.endswith(_VALUE):
      paths.add(name[:match.end() - 1])
  if len(paths) != 1:
    raise errors.KaleidoError(
        f"The checkpoint {prefix!r} holds {len(paths)} patch CNNs; pass a checkpoint of one "
        "Kaleido-BERT model.")
  return paths.pop().split("/")


def _restore_checkpoint(cnn: tf_keras.Model, prefix: str) -> None:
  *parents, leaf = _cnn_path(prefix)
  root = tf.train.Checkpoint(**{leaf: cnn})
  for edge in reversed(parents):
    root = tf.train.Checkpoint(**{edge: root})
  try:
    root.read(prefix).expect_partial().assert_existing_objects_matched()
  except (AssertionError, ValueError) as error:
    raise errors.KaleidoError(
        f"The patch CNN in {prefix!r} does not fit the {cnn.name} CNN "
        f"({str(error).splitlines()[0][:200]}); pass a checkpoint with the same CNN."
    ) from error


def frozen_embedder(cnn: str, patch_size: int, feature_size: int,
                    weights: str = "") -> patch_embedder_lib.PatchEmbedder:
  """A frozen float32 patch embedder whose CNN `cnn` has the `weights` (a path `load_cnn_weights`
  takes; "" leaves them random): what the feature cache is computed with outside a training run
  (data/build_feature_cache.py, its Beam workers)."""
  embedder = patch_embedder_lib.frozen_float32(cnn, patch_size, feature_size)
  if weights:
    load_cnn_weights(embedder.cnn, weights)
  return embedder
