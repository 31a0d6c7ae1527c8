"""Builds the feature cache (kaleido.feature_cache.store) of a prepared folder.

Each record shard becomes one cache shard: its examples are read in file order, every variant of
their 55 patches (kaleido.patches.variants) goes through a float32 copy of the frozen patch
embedder, and the shard is written under a temporary name and renamed when complete. An
interrupted build (kill -9 included) therefore resumes at the shards still missing, and
cache.json says `complete` only once every shard is there. Several processes may build one
cache at once (the workers of a multi-worker run, Beam workers): each starts at its own shard
and skips the shards another has finished.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Callable

import tensorflow as tf
import tf_keras

from kaleido.feature_cache import store
from kaleido.patches import variants
from kaleido.records import manifest as manifest_lib
from kaleido.records import reader
from kaleido.utils import files
from kaleido.utils import interrupts
from kaleido.utils import progress as progress_lib

Embed = Callable[[tf.Tensor], tf.Tensor]  # (B, NUM_VARIANTS, P, P, 3) uint8 -> (B, .., F)


@dataclasses.dataclass(frozen=True)
class Plan:
  """One cache to build: its folder, identity, and the record shards it covers."""
  data_folder: str
  folder: str
  identity: dict
  record_paths: tuple[str, ...]
  num_examples: tuple[int, ...]

  def pending(self, first: int = 0) -> list[int]:
    """Indices of the record shards whose cache shard is missing, from `first` on, cyclically."""
    count = len(self.record_paths)
    order = [(first + i) % count for i in range(count)] if count else []
    return [i for i in order if not os.path.exists(self.output_path(i))]

  def output_path(self, index: int) -> str:
    return store.shard_path(self.folder, self.record_paths[index])


def fingerprint(embedder: tf_keras.layers.Layer) -> str:
  """store.patch_cnn_fingerprint of a patch embedder's CNN (kaleido.model.patch_embedder: its
  `cnn` model and its `cnn` and `patch_size` settings)."""
  config = embedder.get_config()
  return store.patch_cnn_fingerprint(embedder.cnn, config["cnn"], config["patch_size"])


def plan(data_folder: str, patch_cnn_digest: str, feature_size: int, root: str = "") -> Plan:
  """The cache of `data_folder` for the patch CNN with fingerprint `patch_cnn_digest`."""
  manifest = manifest_lib.load(data_folder)
  manifest_lib.check_shards(data_folder, manifest)
  records_digest = store.records_fingerprint(data_folder, manifest)
  return Plan(data_folder=data_folder,
              folder=store.cache_folder(data_folder, patch_cnn_digest, records_digest, root),
              identity=store.identity(data_folder, patch_cnn_digest, records_digest,
                                      feature_size),
              record_paths=tuple(manifest.shard_paths(data_folder)),
              num_examples=tuple(shard["num_examples"] for shard in manifest.shards))


def embed_function(embedder: tf_keras.layers.Layer) -> Embed:
  """The traced forward pass of a frozen patch embedder."""
  return tf.function(lambda patches: embedder(patches, training=False), reduce_retracing=True)


def _variant_batches(record_path: str, config: reader.ReaderConfig,
                     batch_size: int) -> tf.data.Dataset:
  def example(serialized):
    decoded = reader.decode(serialized, config)
    return {"image_id": decoded["image_id"],
            "variants": variants.pixel_variants(decoded["patches"])}

  return (tf.data.TFRecordDataset(record_path)
          .map(example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
          .batch(batch_size).prefetch(1))


def build_shard(cache_plan: Plan, index: int, embed: Embed, batch_size: int,
                progress: progress_lib.Progress) -> int:
  """Writes the cache shard of record shard `index` atomically; returns its example count."""
  manifest = manifest_lib.load(cache_plan.data_folder)
  config = reader.reader_config(manifest)
  output = cache_plan.output_path(index)
  count = 0
  with files.atomic_path(output) as tmp_path:
    with tf.io.TFRecordWriter(tmp_path) as writer:
      for batch in _variant_batches(cache_plan.record_paths[index], config, batch_size):
        features = embed(batch["variants"]).numpy()
        for image_id, example_features in zip(batch["image_id"].numpy(), features):
          writer.write(store.serialize(image_id, example_features))
        count += len(features)
        progress.update(len(features))
  if count != cache_plan.num_examples[index]:
    os.remove(output)
    raise store.FeatureCacheError(
        f"{cache_plan.record_paths[index]!r} holds {count} examples, not the "
        f"{cache_plan.num_examples[index]} its manifest lists; re-prepare it with "
        "python data/prepare.py.")
  return count


def start(cache_plan: Plan) -> None:
  """Creates the cache folder with its incomplete cache.json (once) and clears dead builds'
  temporary files."""
  os.makedirs(cache_plan.folder, exist_ok=True)
  files.remove_stale_temporaries(cache_plan.folder)
  info_path = os.path.join(cache_plan.folder, store.CACHE_NAME)
  if store.read_info(cache_plan.folder) is None:
    files.write_json(info_path, {**cache_plan.identity, "complete": False})


def finish(cache_plan: Plan) -> store.FeatureCache:
  """Records every shard in cache.json as complete and returns the cache."""
  missing = [os.path.basename(cache_plan.output_path(i)) for i in cache_plan.pending()]
  if missing:
    raise store.FeatureCacheError(
        f"The feature cache {cache_plan.folder!r} lacks {len(missing)} shards (first: "
        f"{missing[0]}); rerun the same command to finish it.")
  shards = [{"file": os.path.basename(cache_plan.output_path(i)), "num_examples": count,
             "num_bytes": os.path.getsize(cache_plan.output_path(i))}
            for i, count in enumerate(cache_plan.num_examples)]
  files.write_json(os.path.join(cache_plan.folder, store.CACHE_NAME),
                   {**cache_plan.identity, "complete": True, "shards": shards})
  return store.load(cache_plan.folder, cache_plan.identity)


def build(cache_plan: Plan, embed: Embed, batch_size: int = 16, first_shard: int = 0,
          log: Callable[[str], None] | None = None) -> store.FeatureCache:
  """Builds whatever part of the cache is missing (this process starting at `first_shard`) and
  returns the complete cache; reuses a complete one."""
  log = log or (lambda line: print(line, file=sys.stderr))
  cache = store.load(cache_plan.folder, cache_plan.identity)
  if cache is not None:
    return cache
  start(cache_plan)
  pending = cache_plan.pending(first_shard)
  done = sum(count for i, count in enumerate(cache_plan.num_examples) if i not in pending)
  log(f"Computing the patch features of {cache_plan.data_folder} once, into "
      f"{cache_plan.folder} (reused by every run with this patch CNN).")
  progress = progress_lib.Progress(sum(cache_plan.num_examples), "feature cache", unit="images",
                                   initial=done)
  for index in interrupts.stopping_between(pending, "shard", "shards"):
    if not os.path.exists(cache_plan.output_path(index)):  # another process may have done it
      build_shard(cache_plan, index, embed, batch_size, progress)
  progress.close()
  return finish(cache_plan)


def ensure_cache(data_folder: str, embedder: tf_keras.layers.Layer, root: str = "",
                 batch_size: int = 16, first_shard: int = 0,
                 log: Callable[[str], None] | None = None) -> store.FeatureCache:
  """The feature cache of `data_folder` for the frozen patch `embedder`'s current weights
  (a float32 one: kaleido.model.patch_embedder.float32_copy), built on first use."""
  cache_plan = plan(data_folder, fingerprint(embedder), embedder.get_config()["feature_size"],
                    root)
  return build(cache_plan, embed_function(embedder), batch_size, first_shard, log)
