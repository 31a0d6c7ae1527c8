"""Prepared TFRecords -> a `tf.data` pipeline of dense tensors.

The 55 kaleido patches and their boxes are cut from the stored product crop as each example is
read (kaleido.patches.cutting). With a feature cache (kaleido.feature_cache) each record is read
with its cache record instead, and the example holds the cached features of every patch variant
(`patch_variants`) in place of the pixels; no image is decoded.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from kaleido.feature_cache import store
from kaleido.patches import cutting
from kaleido.patches import kaleido_grid
from kaleido.records import manifest as manifest_lib
from kaleido.records import schema
from kaleido.utils import tracing

PAD_INDEX = -1
CACHE_MISMATCH = "the feature cache does not hold this example"


@dataclasses.dataclass(frozen=True)
class ReaderConfig:
  """Shapes of the dense tensors the reader produces."""
  max_seq_length: int = 64
  patch_size: int = 64
  max_alignments: int = 32
  # Read the product name (title) as the text, ids and string, where an example has one (the
  # paper's retrieval ranks titles); the prepared text elsewhere.
  name_as_text: bool = False


def _pad_to(values: tf.Tensor, length: int, pad_value) -> tf.Tensor:
  values = values[:length]
  padding = tf.fill([length - tf.shape(values)[0]], tf.cast(pad_value, values.dtype))
  return tf.ensure_shape(tf.concat([values, padding], axis=0), [length])


def _image_side(parsed: dict[str, tf.Tensor], config: ReaderConfig,
                cached: dict[str, tf.Tensor] | None) -> dict[str, tf.Tensor]:
  """The 55 patches cut from the crop, or the cached features of their variants."""
  if cached is None:
    crop = tf.io.decode_jpeg(parsed["crop_jpeg"], channels=3)
    return {"patches": tf.ensure_shape(cutting.cut_patches(crop, config.patch_size),
                                       [kaleido_grid.NUM_PATCHES, config.patch_size,
                                        config.patch_size, 3])}
  check = tf.debugging.assert_equal(cached["image_id"], parsed["image_id"],
                                    message=CACHE_MISMATCH)
  with tf.control_dependencies([check]):
    return {"patch_variants": tf.identity(cached["patch_variants"])}


def decode(serialized: tf.Tensor, config: ReaderConfig,
           cached: dict[str, tf.Tensor] | None = None) -> dict[str, tf.Tensor]:
  """One serialized example -> dense, fixed-shape tensors; with its parsed cache record
  (`store.parse`), the cached `patch_variants` instead of the `patches`."""
  parsed = schema.parse(serialized)
  token_ids, text = parsed["token_ids"], parsed["text"]
  if config.name_as_text:
    has_name = tf.size(parsed["name_token_ids"]) > 0
    token_ids = tf.cond(has_name, lambda: parsed["name_token_ids"], lambda: token_ids)
    text = tf.where(has_name, parsed["name"], text)
  token_ids = tf.cast(token_ids, tf.int32)
  # Strongest pairs first, so the cut to max_alignments keeps the best ones.
  order = tf.argsort(parsed["align_score"], direction="DESCENDING", stable=True)
  align_token, align_patch, align_score = (
      tf.gather(parsed[key], order) for key in ("align_token", "align_patch", "align_score"))
  num_alignments = tf.minimum(tf.shape(align_token)[0], config.max_alignments)
  return {
      "input_word_ids": _pad_to(token_ids, config.max_seq_length, 0),
      "input_mask": _pad_to(tf.ones_like(token_ids), config.max_seq_length, 0),
      **_image_side(parsed, config, cached),
      "patch_boxes": cutting.patch_boxes(parsed["crop_box"]),
      "category_id": tf.cast(parsed["category_id"], tf.int32),
      "subcategory_id": tf.cast(parsed["subcategory_id"], tf.int32),
      "product_id": parsed["product_id"],
      "image_id": parsed["image_id"],
      "text": text,
      "align_token": _pad_to(tf.cast(align_token, tf.int32), config.max_alignments,
                             PAD_INDEX),
      "align_patch": _pad_to(tf.cast(align_patch, tf.int32), config.max_alignments,
                             PAD_INDEX),
      "align_score": _pad_to(align_score, config.max_alignments, 0.0),
      "num_alignments": num_alignments,
  }


def reader_config(manifest: manifest_lib.Manifest, max_alignments: int = 32,
                  name_as_text: bool = False, folder: str = "") -> ReaderConfig:
  """The reader shapes that match a prepared folder; `name_as_text` needs stored names."""
  if name_as_text and not manifest.num_with_name:
    raise manifest_lib.ManifestError(
        f"{folder or 'The prepared folder'!r} holds no product names (prepared before names were "
        "stored, or its catalog has none), so titles cannot be ranked; re-run python "
        "data/prepare.py on it, or rank the prepared texts with --retrieval_text=description.")
  return ReaderConfig(max_seq_length=manifest.max_seq_length, patch_size=manifest.patch_size,
                      max_alignments=max_alignments, name_as_text=name_as_text)


def _zipped_shards(record_path: tf.Tensor, cache_path: tf.Tensor) -> tf.data.Dataset:
  return tf.data.Dataset.zip(tf.data.TFRecordDataset(record_path),
                             tf.data.TFRecordDataset(cache_path))


def decoder(config: ReaderConfig, cache: store.FeatureCache | None = None):
  """`decode` of the elements of `ordered_records` / `make_dataset` before decoding: a
  serialized record, or with a feature `cache` a (record, cache record) pair."""
  if cache is None:
    return lambda serialized: decode(serialized, config)
  return lambda serialized, cached: decode(serialized, config,
                                           store.parse(cached, cache.feature_size))


def ordered_records(folder: str, cache: store.FeatureCache | None = None) -> tf.data.Dataset:
  """Every record of a prepared folder in manifest order, unparsed; with its feature `cache`,
  (record, cache record) pairs (decode either with `decoder`)."""
  paths = manifest_lib.load(folder).shard_paths(folder)
  if cache is None:
    return tf.data.TFRecordDataset(paths)
  return _zipped_shards(paths, list(cache.shard_paths))


def patch_features(example: dict[str, tf.Tensor]) -> tf.Tensor:
  """The cached features of the 55 patches as cut, from a decoded example with a cache."""
  return example["patch_variants"][..., :kaleido_grid.NUM_PATCHES, :]


def make_dataset(folder: str, batch_size: int | None = None, shuffle: bool = False,
                 repeat: bool = False, seed: int | None = None,
                 input_context: tf.distribute.InputContext | None = None,
                 max_alignments: int = 32, name_as_text: bool = False,
                 cache: store.FeatureCache | None = None) -> tf.data.Dataset:
  """Dataset of a prepared folder; with `input_context`, each input pipeline reads its own shards.

  `batch_size` is per input pipeline (per replica under a strategy); None gives single examples.
  The order is a function of `seed` alone (parallel steps keep their order), so runs with the
  same seed see the same examples, whatever the number of replicas, and whether or not they read
  the folder's feature `cache`. `name_as_text` reads the product names as the text (see
  ReaderConfig).
  """
  manifest = manifest_lib.load(folder)
  if not manifest.num_examples:
    reasons = ", ".join(f"{k}: {v}" for k, v in manifest.skipped_reasons.items()) or "none"
    raise manifest_lib.ManifestError(
        f"{folder!r} holds no examples: all {manifest.num_skipped} rows of {manifest.source} "
        f"were skipped ({reasons}); fix those rows and re-run python data/prepare.py.")
  manifest_lib.check_shards(folder, manifest)
  config = reader_config(manifest, max_alignments, name_as_text, folder)
  paths = manifest.shard_paths(folder)
  files = tf.data.Dataset.from_tensor_slices(
      paths if cache is None else (paths, list(cache.shard_paths)))
  if input_context and input_context.num_input_pipelines > 1:
    if len(manifest.shards) < input_context.num_input_pipelines:
      raise manifest_lib.ManifestError(
          f"{folder!r} has {len(manifest.shards)} shards, fewer than the "
          f"{input_context.num_input_pipelines} input pipelines that each read their own; "
          "re-prepare it with --num_shards >= that, or train with --input_mode=global.")
    files = files.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
  if shuffle:
    files = files.shuffle(len(manifest.shards), seed=seed, reshuffle_each_iteration=True)
  dataset = files.interleave(tf.data.TFRecordDataset if cache is None else _zipped_shards,
                             cycle_length=4, num_parallel_calls=tf.data.AUTOTUNE,
                             deterministic=True)
  if repeat:
    dataset = dataset.repeat()
  decode_fn = decoder(config, cache)
  if shuffle:
    dataset = dataset.shuffle(2048, seed=seed, reshuffle_each_iteration=True)
  dataset = dataset.map(tracing.plain(decode_fn), num_parallel_calls=tf.data.AUTOTUNE,
                        deterministic=True)
  if batch_size:
    dataset = dataset.batch(batch_size, drop_remainder=repeat)
  return dataset.prefetch(tf.data.AUTOTUNE)
