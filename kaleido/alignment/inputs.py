"""The captioner's input: product crops and token ids read from prepared TFRecord folders.

The crop (stored JPEG, see kaleido/records/schema.py) is resized with antialiasing to a square of
`image_size`, the same way the reader cuts kaleido patches from it, so attention cells and
kaleido patches are fractions of the same square.
"""

from __future__ import annotations

import os

import tensorflow as tf

from kaleido import config as config_lib
from kaleido.alignment import config as align_config
from kaleido.patches import cutting
from kaleido.records import manifest as manifest_lib
from kaleido.records import schema

CATALOG_EXTENSIONS = (".h5", ".hdf5", ".jsonl")
SHUFFLE_BUFFER = 2048


def load_prepared(folder: str) -> manifest_lib.Manifest:
  """The manifest of a prepared folder; a clear error for a raw catalog file."""
  if os.path.isfile(folder) and folder.lower().endswith(CATALOG_EXTENSIONS):
    raise align_config.AlignmentError(
        f"{folder!r} is a catalog file, but the alignment generator reads prepared TFRecords; "
        f"run python data/prepare.py --input {folder} --output_dir FOLDER first and pass FOLDER.")
  return manifest_lib.load(folder)


def load_crop(jpeg: tf.Tensor, image_size: int) -> tf.Tensor:
  """JPEG bytes of a crop -> (S, S, 3) uint8."""
  return cutting.square_crop(tf.io.decode_jpeg(jpeg, channels=3), image_size)


def _decode(serialized: tf.Tensor, config: config_lib.CaptionerConfig) -> dict[str, tf.Tensor]:
  parsed = schema.parse(serialized)
  token_ids = tf.cast(parsed["token_ids"][:config.max_length], tf.int32)
  padding = tf.fill([config.max_length - tf.shape(token_ids)[0]], config.pad_id)
  return {"image": load_crop(parsed["crop_jpeg"], config.image_size),
          "token_ids": tf.ensure_shape(tf.concat([token_ids, padding], 0), [config.max_length]),
          "length": tf.shape(token_ids)[0],
          "serialized": serialized}


def drop_words(input_ids: tf.Tensor, rate: float, pad_id: int, seed: tf.Tensor) -> tf.Tensor:
  """Teacher-forced inputs (T,) with each word after the first token replaced by `pad_id` with
  probability `rate`, so the decoder cannot always guess the next word from the last one and
  has to look at the image."""
  dropped = tf.random.stateless_uniform(tf.shape(input_ids), seed) < rate
  dropped &= tf.range(tf.shape(input_ids)[0]) > 0
  return tf.where(dropped, tf.cast(pad_id, input_ids.dtype), input_ids)


def training_dataset(folder: str, config: config_lib.CaptionerConfig, batch_size: int,
                     seed: int | None, flip: bool = True,
                     word_dropout: float = 0.0) -> tf.data.Dataset:
  """Endless shuffled batches of `image` (B, S, S, 3) uint8, teacher-forced `input_ids` and
  `target_ids` (B, max_length - 1) and caption `length` (B,), [CLS] and [SEP] included. Flips
  and word dropout are drawn per example from `seed` (stateless)."""
  paths = load_prepared(folder).shard_paths(folder)
  base_seed = 0 if seed is None else seed

  def prepare(index: tf.Tensor, serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    example = _decode(serialized, config)
    flip_seed = tf.stack([tf.constant(base_seed, tf.int32), index])
    image = example["image"]
    if flip:
      image = tf.image.stateless_random_flip_left_right(image, flip_seed)
    token_ids = example["token_ids"]
    input_ids = token_ids[:-1]
    if word_dropout > 0:
      input_ids = drop_words(input_ids, word_dropout, config.pad_id,
                             tf.stack([tf.constant(base_seed + 1, tf.int32), index]))
    return {"image": image, "input_ids": input_ids, "target_ids": token_ids[1:],
            "length": example["length"]}

  dataset = tf.data.TFRecordDataset(paths).repeat().shuffle(SHUFFLE_BUFFER, seed=seed)
  dataset = dataset.enumerate().map(lambda i, s: prepare(tf.cast(i, tf.int32), s),
                                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return dataset.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def example_dataset(paths: list[str], config: config_lib.CaptionerConfig,
                    batch_size: int) -> tf.data.Dataset:
  """The examples of `paths` in order, batched: `image`, `token_ids` (padded), `length` and the
  `serialized` record."""
  dataset = tf.data.TFRecordDataset(paths).map(
      lambda s: _decode(s, config), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
