"""Prepared TFRecords -> a `tf.data` pipeline of dense tensors.

The 55 kaleido patches are cut here from the stored product crop: for level n the crop is resized
(antialiased) to n*P x n*P and split exactly into its n x n cells, so every patch of a level has
the same pixel footprint and no cell is interpolated across a grid line.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from kaleido.patches import kaleido_grid
from kaleido.records import manifest as manifest_lib
from kaleido.records import schema

PAD_INDEX = -1


@dataclasses.dataclass(frozen=True)
class ReaderConfig:
  """Shapes of the dense tensors the reader produces."""
  max_seq_length: int = 64
  patch_size: int = 64
  max_alignments: int = 32
  # Read the product name (title) as the text, ids and string, where an example has one (the
  # paper's retrieval ranks titles); the prepared text elsewhere.
  name_as_text: bool = False


def level_patches(crop: tf.Tensor, level: int, patch_size: int) -> tf.Tensor:
  """(h, w, 3) crop -> (level**2, P, P, 3) float32 patches of one kaleido level, row-major."""
  side = level * patch_size
  resized = tf.image.resize(tf.cast(crop, tf.float32), [side, side], method="bilinear",
                            antialias=True)
  cells = tf.reshape(resized, [level, patch_size, level, patch_size, 3])
  cells = tf.transpose(cells, [0, 2, 1, 3, 4])
  return tf.reshape(cells, [level * level, patch_size, patch_size, 3])


def _to_uint8(pixels: tf.Tensor) -> tf.Tensor:
  return tf.cast(tf.clip_by_value(tf.round(pixels), 0.0, 255.0), tf.uint8)


def square_crop(crop: tf.Tensor, size: int) -> tf.Tensor:
  """(h, w, 3) crop -> (size, size, 3) uint8: the whole crop, resized as the L1 patch is."""
  return _to_uint8(level_patches(crop, 1, size)[0])


def cut_patches(crop: tf.Tensor, patch_size: int) -> tf.Tensor:
  """(h, w, 3) uint8 crop -> (55, P, P, 3) uint8 kaleido patches in level order, row-major."""
  return _to_uint8(tf.concat([level_patches(crop, n, patch_size) for n in kaleido_grid.LEVELS],
                             axis=0))


def patch_boxes(crop_box: tf.Tensor) -> tf.Tensor:
  """(4,) crop box `[x1, y1, x2, y2]` -> (55, 5) boxes `[x1, x2, y1, y2, w*h]` (full image)."""
  cells = tf.constant(kaleido_grid.grid_fractions(), tf.float32)
  width = crop_box[2] - crop_box[0]
  height = crop_box[3] - crop_box[1]
  x1 = crop_box[0] + cells[:, 0] * width
  x2 = crop_box[0] + cells[:, 2] * width
  y1 = crop_box[1] + cells[:, 1] * height
  y2 = crop_box[1] + cells[:, 3] * height
  return tf.stack([x1, x2, y1, y2, (x2 - x1) * (y2 - y1)], axis=-1)


def _pad_to(values: tf.Tensor, length: int, pad_value) -> tf.Tensor:
  values = values[:length]
  padding = tf.fill([length - tf.shape(values)[0]], tf.cast(pad_value, values.dtype))
  return tf.ensure_shape(tf.concat([values, padding], axis=0), [length])


def decode(serialized: tf.Tensor, config: ReaderConfig) -> dict[str, tf.Tensor]:
  """One serialized example -> dense, fixed-shape tensors."""
  parsed = schema.parse(serialized)
  token_ids, text = parsed["token_ids"], parsed["text"]
  if config.name_as_text:
    has_name = tf.size(parsed["name_token_ids"]) > 0
    token_ids = tf.cond(has_name, lambda: parsed["name_token_ids"], lambda: token_ids)
    text = tf.where(has_name, parsed["name"], text)
  token_ids = tf.cast(token_ids, tf.int32)
  crop = tf.io.decode_jpeg(parsed["crop_jpeg"], channels=3)
  # Strongest pairs first, so the cut to max_alignments keeps the best ones.
  order = tf.argsort(parsed["align_score"], direction="DESCENDING", stable=True)
  align_token, align_patch, align_score = (
      tf.gather(parsed[key], order) for key in ("align_token", "align_patch", "align_score"))
  num_alignments = tf.minimum(tf.shape(align_token)[0], config.max_alignments)
  return {
      "input_word_ids": _pad_to(token_ids, config.max_seq_length, 0),
      "input_mask": _pad_to(tf.ones_like(token_ids), config.max_seq_length, 0),
      "patches": tf.ensure_shape(cut_patches(crop, config.patch_size),
                                 [kaleido_grid.NUM_PATCHES, config.patch_size,
                                  config.patch_size, 3]),
      "patch_boxes": patch_boxes(parsed["crop_box"]),
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


def make_dataset(folder: str, batch_size: int | None = None, shuffle: bool = False,
                 repeat: bool = False, seed: int | None = None,
                 input_context: tf.distribute.InputContext | None = None,
                 max_alignments: int = 32, name_as_text: bool = False) -> tf.data.Dataset:
  """Dataset of a prepared folder; with `input_context`, each input pipeline reads its own shards.

  `batch_size` is per input pipeline (per replica under a strategy); None gives single examples.
  The order is a function of `seed` alone (parallel steps keep their order), so runs with the
  same seed see the same examples, whatever the number of replicas. `name_as_text` reads the
  product names as the text (see ReaderConfig).
  """
  manifest = manifest_lib.load(folder)
  config = reader_config(manifest, max_alignments, name_as_text, folder)
  files = tf.data.Dataset.from_tensor_slices(manifest.shard_paths(folder))
  if input_context and input_context.num_input_pipelines > 1:
    if len(manifest.shards) < input_context.num_input_pipelines:
      raise manifest_lib.ManifestError(
          f"{folder!r} has {len(manifest.shards)} shards, fewer than the "
          f"{input_context.num_input_pipelines} input pipelines that each read their own; "
          "re-prepare it with --num_shards >= that, or train with --input_mode=global.")
    files = files.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
  if shuffle:
    files = files.shuffle(len(manifest.shards), seed=seed, reshuffle_each_iteration=True)
  dataset = files.interleave(tf.data.TFRecordDataset, cycle_length=4,
                             num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  if repeat:
    dataset = dataset.repeat()
  if shuffle:
    dataset = dataset.shuffle(2048, seed=seed, reshuffle_each_iteration=True)
  dataset = dataset.map(lambda s: decode(s, config), num_parallel_calls=tf.data.AUTOTUNE,
                        deterministic=True)
  if batch_size:
    dataset = dataset.batch(batch_size, drop_remainder=repeat)
  return dataset.prefetch(tf.data.AUTOTUNE)
