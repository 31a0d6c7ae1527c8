"""The feature cache of one prepared folder and one frozen patch CNN, on disk.

  ROOT/<key>/cache.json                  what it was computed from and, once complete, its shards
  ROOT/<key>/features-<record shard>     per record shard, the same examples in the same order:
                                         {image_id, features: (NUM_VARIANTS, F) float16 bytes}

ROOT is `<prepared folder>/feature_cache` unless given. The key is a digest of the patch CNN's
weights (`patch_cnn_fingerprint`), of the records (`records_fingerprint`) and of this format, so
a cache is only ever read by the patch CNN and the records it was computed from: new weights or
re-prepared records get a new folder. Rows follow kaleido.patches.variants. float16 keeps 11
significant bits; BUILD_NOTES.md measures what that does to the losses.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

import numpy as np
import tensorflow as tf
import tf_keras

from kaleido import errors
from kaleido.patches import variants
from kaleido.records import manifest as manifest_lib
from kaleido.utils import files

FORMAT = "kaleido-feature-cache/2"  # /2: the identity names the CNN's digest "patch_cnn"
CACHE_NAME = "cache.json"
DEFAULT_ROOT = "feature_cache"
SHARD_PREFIX = "features-"
DTYPE = np.float16
_SPEC = {"image_id": tf.io.FixedLenFeature([], tf.string),
         "features": tf.io.FixedLenFeature([], tf.string)}


class FeatureCacheError(errors.KaleidoError):
  """A feature cache that cannot be built or read; the message names the fix."""


@dataclasses.dataclass(frozen=True)
class FeatureCache:
  """A complete cache: its folder and, for each record shard in manifest order, its shard."""
  folder: str
  feature_size: int
  shard_paths: tuple[str, ...]


def patch_cnn_fingerprint(cnn: tf_keras.Model, cnn_name: str, patch_size: int) -> str:
  """SHA-256 of what the features depend on: the patch CNN's kind, input size and every weight
  (name, shape and float32 bytes, in the model's order)."""
  digest = hashlib.sha256(json.dumps([FORMAT, cnn_name, patch_size]).encode())
  for weight in cnn.weights:
    value = np.ascontiguousarray(weight.numpy(), dtype=np.float32)
    digest.update(f"{weight.name}:{value.shape}".encode())
    digest.update(value.tobytes())
  return digest.hexdigest()


def records_fingerprint(folder: str, manifest: manifest_lib.Manifest) -> str:
  """SHA-256 of the record shards as the manifest lists them (names, counts, digests) and the
  patch size; shards of older manifests without a digest count by size and modification time."""
  shards = []
  for shard, path in zip(manifest.shards, manifest.shard_paths(folder)):
    content = shard.get("sha256") or [os.path.getsize(path), os.stat(path).st_mtime_ns]
    shards.append([shard["file"], shard["num_examples"], content])
  return hashlib.sha256(json.dumps([manifest.patch_size, shards]).encode()).hexdigest()


def cache_folder(data_folder: str, patch_cnn_digest: str, records_digest: str,
                 root: str = "") -> str:
  """Where the cache of these fingerprints lives (ROOT/<key>)."""
  key = hashlib.sha256(f"{FORMAT}:{patch_cnn_digest}:{records_digest}".encode()).hexdigest()
  return os.path.join(root or os.path.join(data_folder, DEFAULT_ROOT), key[:16])


def shard_path(folder: str, record_path: str) -> str:
  """The cache shard of the record shard at `record_path`."""
  return os.path.join(folder, SHARD_PREFIX + os.path.basename(record_path))


def serialize(image_id: bytes, features: np.ndarray) -> bytes:
  """One example's (NUM_VARIANTS, F) features -> a serialized record."""
  feature = {
      "image_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image_id])),
      "features": tf.train.Feature(bytes_list=tf.train.BytesList(
          value=[np.ascontiguousarray(features, DTYPE).tobytes()])),
  }
  return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def parse(serialized: tf.Tensor, feature_size: int) -> dict[str, tf.Tensor]:
  """A serialized cache record -> {image_id, patch_variants: (NUM_VARIANTS, F) float16}."""
  parsed = tf.io.parse_single_example(serialized, _SPEC)
  values = tf.io.decode_raw(parsed["features"], tf.float16)
  return {"image_id": parsed["image_id"],
          "patch_variants": tf.reshape(values, [variants.NUM_VARIANTS, feature_size])}


def identity(data_folder: str, patch_cnn_digest: str, records_digest: str,
             feature_size: int) -> dict:
  """The cache.json fields that say what a cache holds."""
  return {"format": FORMAT, "data": os.path.abspath(data_folder), "patch_cnn": patch_cnn_digest,
          "records": records_digest, "feature_size": feature_size,
          "num_variants": variants.NUM_VARIANTS, "dtype": np.dtype(DTYPE).name}


def read_info(folder: str) -> dict | None:
  """The cache.json of `folder`, or None when there is none or it cannot be read."""
  path = os.path.join(folder, CACHE_NAME)
  try:
    return files.read_json(path)
  except (OSError, ValueError):
    return None


def load(folder: str, expected: dict) -> FeatureCache | None:
  """The complete cache in `folder` whose identity is `expected`; None when it is incomplete or
  absent. A shard whose size differs from the recorded one is refused in one sentence."""
  info = read_info(folder)
  if not info or not info.get("complete"):
    return None
  if any(info.get(key) != value for key, value in expected.items() if key != "data"):
    return None
  paths = []
  for shard in info["shards"]:
    path = os.path.join(folder, shard["file"])
    size = os.path.getsize(path) if os.path.isfile(path) else -1
    if size != shard["num_bytes"]:
      raise FeatureCacheError(
          f"The feature cache shard {path!r} is {'missing' if size < 0 else f'{size} bytes'}, "
          f"not the {shard['num_bytes']} bytes its {CACHE_NAME} lists; delete {folder!r} and "
          "rerun: the cache is rebuilt.")
    paths.append(path)
  return FeatureCache(folder=folder, feature_size=info["feature_size"], shard_paths=tuple(paths))


def read_patch_features(cache: FeatureCache) -> tuple[list[str], np.ndarray]:
  """(image ids, (N, 55, F) float16 features of the patches as cut) of every example of the
  cache, in record order (what evaluation and index building read instead of embedding)."""
  examples = tf.data.TFRecordDataset(list(cache.shard_paths)).map(
      lambda record: parse(record, cache.feature_size), num_parallel_calls=tf.data.AUTOTUNE,
      deterministic=True).batch(256)
  image_ids, features = [], [np.zeros([0, variants.NUM_PATCHES, cache.feature_size], DTYPE)]
  for batch in examples:
    image_ids += [image_id.decode("utf-8") for image_id in batch["image_id"].numpy()]
    features.append(batch["patch_variants"][:, :variants.NUM_PATCHES].numpy())
  return image_ids, np.concatenate(features)
