"""Input pipelines of the downstream tasks (paper section 4.2) from a prepared folder.

Every batch holds the encoder inputs (input_word_ids, input_mask, patches, patch_boxes) and the
task's labels: `itm_label` for retrieval (a share of the pairs get another product's image of the
same subcategory), `label` for category / subcategory (-1: a class unknown to training), and
`caption_ids` / `caption_weights` for captioning. With the folder's feature cache
(kaleido.feature_cache), `patch_features` (B, 55, F) float16 replaces `patches`; with
`trim_text`, each batch's text positions end at its longest text (features.trim_text).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import tensorflow as tf

from kaleido import config as config_lib
from kaleido.dataloaders import features
from kaleido.dataloaders import pretraining as pretraining_inputs
from kaleido.dataloaders import transforms
from kaleido.records import reader
from kaleido.text import vocab as vocab_lib
from kaleido.utils import tracing

if TYPE_CHECKING:
  from kaleido.feature_cache import store

ENCODER_KEYS = ("input_word_ids", "input_mask", "patches", "patch_boxes")
IMAGE_SIDE = ("patches", "patch_boxes")
LABEL_KEYS = {"category": "category_id", "subcategory": "subcategory_id"}


def _encoder_example(example: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
  """A reader example's encoder inputs, labels and product id (the cached features of the 55
  patches as cut in place of their pixels)."""
  if "patch_variants" in example:
    example = {**example, "patch_features": reader.patch_features(example)}
  keys = _encoder_keys(example)
  return {key: example[key] for key in keys + ("category_id", "subcategory_id", "product_id")}


def example_batches(folder: str, batch_size: int, seed: int | None,
                    input_context: tf.distribute.InputContext | None,
                    name_as_text: bool = False,
                    cache: store.FeatureCache | None = None,
                   subcategory_runs: int = 0) -> tf.data.Dataset:
  """Endless shuffled batches of reader examples (encoder inputs, labels, product ids);
  `batch_size` is global, split across replicas when `input_context` is given. With
  `subcategory_runs` > 0, each batch is made of runs of that many examples of one subcategory
  (in the shuffled order in which each run fills)."""
  batch_size = (input_context.get_per_replica_batch_size(batch_size) if input_context
                else batch_size)
  examples = reader.make_dataset(folder, shuffle=True, repeat=True, seed=seed,
                                 input_context=input_context, name_as_text=name_as_text,
                                 cache=cache)
  examples = examples.map(tracing.plain(_encoder_example), num_parallel_calls=tf.data.AUTOTUNE,
                          deterministic=True)
  if subcategory_runs:
    examples = examples.group_by_window(
        key_func=lambda example: tf.cast(example["subcategory_id"], tf.int64),
        reduce_func=lambda _, run: run.batch(subcategory_runs),
        window_size=subcategory_runs).unbatch()
  return examples.batch(batch_size, drop_remainder=True)


def _encoder_keys(batch: dict[str, tf.Tensor]) -> tuple[str, ...]:
  return features.cached_keys(ENCODER_KEYS, features.is_cached(batch))


def _finished(batches: tf.data.Dataset, trim_text: bool) -> tf.data.Dataset:
  """`batches`, each cut to its longest text when `trim_text` (features.trim_text), prefetched."""
  if trim_text:
    batches = batches.map(tracing.plain(features.trim_text))
  return batches.prefetch(tf.data.AUTOTUNE)


def _seeded(batches: tf.data.Dataset, seed: int | None,
            input_context: tf.distribute.InputContext | None) -> tf.data.Dataset:
  """`(batch, (2,) seed)` pairs for per-batch random draws."""
  pipeline_id = input_context.input_pipeline_id if input_context else 0
  return tf.data.Dataset.zip(batches, pretraining_inputs.seed_stream(seed, pipeline_id))


def retrieval_dataset(folder: str, batch_size: int, finetune: config_lib.FinetuneConfig,
                      seed: int | None, input_context: tf.distribute.InputContext | None,
                      name_as_text: bool, cache: store.FeatureCache | None = None,
                      trim_text: bool = False) -> tf.data.Dataset:
  """Matched and negative pairs (`itm_label` 1 / 0) of the product names or texts, with the
  `product_key` of each text's product (for the contrastive loss). With
  `finetune.negatives_per_positive` the pairs are all matched, and the training step makes the
  negatives (kaleido.tasks.itm_groups) from their `subcategory_id` and `pair_seed` (B, 2)."""
  in_step = finetune.negatives_per_positive > 0

  def with_negatives(batch, batch_seed):
    image_side = features.cached_keys(IMAGE_SIDE, features.is_cached(batch))
    fraction = 0.0 if in_step else finetune.negative_fraction
    batch = transforms.negative_pairs(batch, fraction, finetune.negative_same_subcategory,
                                      image_side, batch_seed)
    extra = {}
    if in_step:
      size = tf.shape(batch["product_id"])[0]
      extra = {"subcategory_id": batch["subcategory_id"],
               "pair_seed": tf.random.experimental.stateless_split(batch_seed, size)}
    return {**{key: batch[key] for key in _encoder_keys(batch) + ("itm_label",)},
            "product_key": features.product_key(batch["product_id"]), **extra}

  batches = _seeded(example_batches(folder, batch_size, seed, input_context, name_as_text,
                                    cache, finetune.subcategory_runs),
                    None if seed is None else seed + 1, input_context)
  return _finished(batches.map(tracing.plain(with_negatives),
                               num_parallel_calls=tf.data.AUTOTUNE), trim_text)


def classification_dataset(folder: str, batch_size: int, task: str, seed: int | None,
                           input_context: tf.distribute.InputContext | None,
                           cache: store.FeatureCache | None = None,
                           trim_text: bool = False) -> tf.data.Dataset:
  """Encoder inputs with `label`, the category or subcategory id."""
  label_key = LABEL_KEYS[task]
  batches = example_batches(folder, batch_size, seed, input_context, cache=cache).map(
      tracing.plain(lambda batch: {**{key: batch[key] for key in _encoder_keys(batch)},
                                   "label": batch[label_key]}),
      num_parallel_calls=tf.data.AUTOTUNE)
  return _finished(batches, trim_text)


def one_shot_inputs(word_ids: tf.Tensor, cls_id: int, mask_id: int) -> tf.Tensor:
  """(B, L) ids -> `[CLS] [MASK] ... [MASK]`: what the one-shot decoder sees."""
  masks = tf.fill(tf.shape(word_ids[:, 1:]), tf.cast(mask_id, word_ids.dtype))
  return tf.concat([tf.fill(tf.shape(word_ids[:, :1]), tf.cast(cls_id, word_ids.dtype)), masks],
                   axis=1)


def caption_targets(word_ids: tf.Tensor, input_mask: tf.Tensor,
                    mode: str) -> tuple[tf.Tensor, tf.Tensor]:
  """(B, L) `[CLS] caption [SEP]` -> (targets, weights), both (B, L), per decoder position.

  Autoregressive: position i predicts token i + 1 (the last real position predicts nothing).
  One-shot: position i predicts token i, for every real position but [CLS].
  """
  weights = tf.cast(input_mask, tf.float32)
  if mode == "autoregressive":
    targets = tf.concat([word_ids[:, 1:], tf.zeros_like(word_ids[:, :1])], axis=1)
    return targets, tf.concat([weights[:, 1:], tf.zeros_like(weights[:, :1])], axis=1)
  return word_ids, tf.concat([tf.zeros_like(weights[:, :1]), weights[:, 1:]], axis=1)


def caption_dataset(folder: str, batch_size: int, mode: str,
                    special_ids: vocab_lib.SpecialIds, seed: int | None,
                    input_context: tf.distribute.InputContext | None,
                    cache: store.FeatureCache | None = None,
                    trim_text: bool = False) -> tf.data.Dataset:
  """Encoder inputs as the decoder of `mode` sees them, with the caption's targets."""

  def to_caption_batch(batch):
    targets, weights = caption_targets(batch["input_word_ids"], batch["input_mask"], mode)
    word_ids, input_mask = batch["input_word_ids"], batch["input_mask"]
    if mode == "one_shot":
      word_ids = one_shot_inputs(word_ids, special_ids.cls_id, special_ids.mask_id)
      input_mask = tf.ones_like(input_mask)
    image = {key: batch[key] for key in _encoder_keys(batch)[2:]}  # patches and boxes
    return {"input_word_ids": word_ids, "input_mask": input_mask, **image,
            "caption_ids": targets, "caption_weights": weights}

  return _finished(example_batches(folder, batch_size, seed, input_context, cache=cache).map(
      tracing.plain(to_caption_batch), num_parallel_calls=tf.data.AUTOTUNE), trim_text)
