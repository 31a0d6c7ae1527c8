"""An evaluation folder in memory: every example's text ids, boxes, labels and ids, in file order
(the patches stay serialized until an image is embedded)."""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from kaleido.records import manifest as manifest_lib
from kaleido.records import reader


@dataclasses.dataclass
class Examples:
  """The evaluation folder in memory, in file order."""
  serialized: list[bytes]
  word_ids: np.ndarray  # (N, L) int32
  input_mask: np.ndarray  # (N, L) int32
  patch_boxes: np.ndarray  # (N, 55, 5) float32
  category_ids: np.ndarray
  subcategory_ids: np.ndarray
  product_ids: np.ndarray  # (N,) str
  image_ids: list[str]
  texts: list[str]


def read_examples(folder: str, reader_config: reader.ReaderConfig) -> Examples:
  """Every example of the prepared `folder` (its shards checked), decoded by `reader_config`."""
  manifest = manifest_lib.load(folder)
  manifest_lib.check_shards(folder, manifest)
  serialized = manifest_lib.read_records(folder, manifest)
  fields = {key: [] for key in ("input_word_ids", "input_mask", "patch_boxes", "category_id",
                                "subcategory_id", "product_id", "image_id", "text")}
  decode = tf.function(reduce_retracing=True)(lambda records: tf.map_fn(
      lambda record: {key: reader.decode(record, reader_config)[key] for key in fields},
      records, fn_output_signature={
          "input_word_ids": tf.int32, "input_mask": tf.int32, "patch_boxes": tf.float32,
          "category_id": tf.int32, "subcategory_id": tf.int32, "product_id": tf.string,
          "image_id": tf.string, "text": tf.string}))
  for start in range(0, len(serialized), 256):
    for key, value in decode(tf.constant(serialized[start:start + 256])).items():
      fields[key].append(value.numpy())
  joined = {key: np.concatenate(values) for key, values in fields.items()}
  text = lambda values: [value.decode("utf-8") for value in values]
  return Examples(
      serialized=serialized, word_ids=joined["input_word_ids"], input_mask=joined["input_mask"],
      patch_boxes=joined["patch_boxes"], category_ids=joined["category_id"],
      subcategory_ids=joined["subcategory_id"],
      product_ids=np.asarray(text(joined["product_id"])), image_ids=text(joined["image_id"]),
      texts=text(joined["text"]))
