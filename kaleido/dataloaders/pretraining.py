"""The on-the-fly pre-training input pipeline: prepared TFRecords -> `features` contract batches.

All masking and kaleido transforms are TensorFlow ops inside tf.data, drawn anew for every
example of every epoch: per-example transforms (AGM or random masking, text corruption, RR, JPS,
G2CM) in a parallel map before batching, per-batch ones (CP camouflage, ITM negatives) after it.
Each example and batch gets its own `(2,)` seed from a `Dataset.random` stream for the stateless
ops. With a feature cache (kaleido.feature_cache) the transforms pick rows of the cached
features instead of pixels: the same draws, so the same batches, with the patch CNN's work done.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import tensorflow as tf

from kaleido import config as config_lib
from kaleido.dataloaders import features
from kaleido.dataloaders import transforms
from kaleido.masking import agm
from kaleido.masking import text_masking
from kaleido.patches import variants
from kaleido.records import reader
from kaleido.text import vocab as vocab_lib
from kaleido.utils import tracing

if TYPE_CHECKING:
  from kaleido.feature_cache import store

OUTPUT_KEYS = features.TEXT_KEYS + features.IMAGE_KEYS + ("itm_label", "product_key")
_BATCH_TRANSFORM_KEYS = ("product_id", "subcategory_id")  # read per batch, then dropped


def example_transform(example: dict[str, tf.Tensor], task_config: config_lib.PretrainingConfig,
                      special_ids: vocab_lib.SpecialIds, seed: tf.Tensor) -> dict[str, tf.Tensor]:
  """A reader example (pixels, or cached `patch_variants`) -> its masked text and transformed
  image side, before batching."""
  mask_seed, text_seed, image_seed = tf.unstack(tf.random.split(seed, 3))
  maskable = text_masking.maskable_tokens(example["input_word_ids"], example["input_mask"],
                                          special_ids)
  choice = agm.choose_masks(maskable, example["align_token"], example["align_patch"],
                            task_config, mask_seed)
  text = text_masking.mask_tokens(example["input_word_ids"], choice.token_positions,
                                  choice.num_tokens, special_ids, text_seed)
  cached = "patch_variants" in example
  table = example["patch_variants"] if cached else variants.pixel_variants(example["patches"])
  image = transforms.example_image(table, choice, task_config, image_seed, cached)
  kept = {key: example[key] for key in ("input_mask", "patch_boxes") + _BATCH_TRANSFORM_KEYS}
  return {**text, **image, **kept}


def batch_transform(batch: dict[str, tf.Tensor], task_config: config_lib.PretrainingConfig,
                    seed: tf.Tensor) -> dict[str, tf.Tensor]:
  """A batch of `example_transform` outputs -> a contract batch (string features dropped)."""
  cached = features.is_cached(batch)
  batch = transforms.batch_transforms(batch, task_config, seed, cached)
  batch["product_key"] = features.product_key(batch["product_id"])
  in_step = {}
  if task_config.itm_negatives_per_positive:  # what the step's ITM groups are made from
    size = tf.shape(batch["product_id"])[0]
    in_step = {"subcategory_id": batch["subcategory_id"],
               "pair_seed": tf.random.experimental.stateless_split(
                   tf.random.experimental.stateless_fold_in(seed, 2), size)}
  return {**{key: batch[key] for key in features.cached_keys(OUTPUT_KEYS, cached)}, **in_step}


def seed_stream(seed: int | None, pipeline_id: int) -> tf.data.Dataset:
  """Endless `[random, pipeline_id]` int64 seeds: distinct across input pipelines."""
  return tf.data.Dataset.random(seed=seed).map(tracing.plain(lambda value: tf.stack(
      [value, tf.constant(pipeline_id, tf.int64)])))


def pretraining_dataset(folder: str, global_or_per_replica_batch_size: int,
                        task_config: config_lib.PretrainingConfig,
                        special_ids: vocab_lib.SpecialIds, seed: int | None,
                        input_context: tf.distribute.InputContext | None = None,
                        cache: store.FeatureCache | None = None,
                        trim_text: bool = False) -> tf.data.Dataset:
  """Endless, shuffled pre-training batches of a prepared folder.

  Without `input_context` the batch size is that of the batches; with it (from
  `strategy.distribute_datasets_from_function`) it is the global batch size, split over the
  replicas, and each input pipeline reads its own shards. Batches have static shapes. With the
  folder's feature `cache`, batches hold features (features.FEATURE_KEYS) instead of pixels;
  with `trim_text` each batch's text positions end at its longest text (features.trim_text).
  """
  agm.check_config(task_config)
  batch_size = (input_context.get_per_replica_batch_size(global_or_per_replica_batch_size)
                if input_context else global_or_per_replica_batch_size)
  pipeline_id = input_context.input_pipeline_id if input_context else 0
  examples = reader.make_dataset(folder, shuffle=True, repeat=True, seed=seed,
                                 input_context=input_context, cache=cache)
  examples = tf.data.Dataset.zip(examples, seed_stream(seed, pipeline_id)).map(
      tracing.plain(lambda example, example_seed: example_transform(
          example, task_config, special_ids, example_seed)),
      num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  batches = examples.batch(batch_size, drop_remainder=True)
  batch_seed = None if seed is None else seed + 1
  batches = tf.data.Dataset.zip(batches, seed_stream(batch_seed, pipeline_id)).map(
      tracing.plain(lambda batch, seed_pair: batch_transform(batch, task_config, seed_pair)),
      num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  if trim_text:
    batches = batches.map(tracing.plain(features.trim_text))
  return batches.prefetch(tf.data.AUTOTUNE)
