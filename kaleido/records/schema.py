"""The TFRecord schema of one prepared example (one product image with its text).

Patches are stored as the product crop (JPEG) plus its box; the reader cuts the 55 kaleido
patches from it. The product name (title) is stored with its own token ids beside the text the
folder was prepared with, so retrieval can rank titles as the paper does. Alignment pairs (token index, patch index, score) come from the Attention-based
Alignment Generator and may be empty.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import tensorflow as tf

# Version 2 added the product name and its token ids; version 1 folders read as having no names.
SCHEMA_VERSION = 2
READABLE_SCHEMA_VERSIONS = (1, 2)


@dataclasses.dataclass
class PreparedExample:
  """Everything stored per example."""
  image_id: str
  product_id: str
  text: str
  token_ids: Sequence[int]
  category_id: int
  subcategory_id: int
  pose: str
  crop_jpeg: bytes
  crop_box: np.ndarray  # (4,) [x1, y1, x2, y2] normalised to the full image
  image_size: tuple[int, int]  # (height, width)
  foreground_found: bool
  # The product name and its `[CLS] ... [SEP]` ids; empty when the catalog row has no name.
  name: str = ""
  name_token_ids: Sequence[int] = ()
  # Alignment pairs: align_token[i] is a position in token_ids ([CLS] = 0), align_patch[i] an
  # absolute kaleido patch index (0..54, level order), align_score[i] the generator's confidence.
  align_token: Sequence[int] = ()
  align_patch: Sequence[int] = ()
  align_score: Sequence[float] = ()


def _bytes(values: Sequence[bytes]) -> tf.train.Feature:
  return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))


def _ints(values: Sequence[int]) -> tf.train.Feature:
  return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))


def _floats(values: Sequence[float]) -> tf.train.Feature:
  return tf.train.Feature(float_list=tf.train.FloatList(value=[float(v) for v in values]))


def serialize(example: PreparedExample) -> bytes:
  """PreparedExample -> serialized tf.train.Example."""
  if not len(example.align_token) == len(example.align_patch) == len(example.align_score):
    raise ValueError("Alignment token, patch and score lists must have the same length.")
  features = {
      "image_id": _bytes([example.image_id.encode("utf-8")]),
      "product_id": _bytes([example.product_id.encode("utf-8")]),
      "text": _bytes([example.text.encode("utf-8")]),
      "token_ids": _ints(example.token_ids),
      "name": _bytes([example.name.encode("utf-8")]),
      "name_token_ids": _ints(example.name_token_ids),
      "category_id": _ints([example.category_id]),
      "subcategory_id": _ints([example.subcategory_id]),
      "pose": _bytes([example.pose.encode("utf-8")]),
      "crop_jpeg": _bytes([example.crop_jpeg]),
      "crop_box": _floats(example.crop_box),
      "image_size": _ints(example.image_size),
      "foreground_found": _ints([int(example.foreground_found)]),
      "align_token": _ints(example.align_token),
      "align_patch": _ints(example.align_patch),
      "align_score": _floats(example.align_score),
  }
  return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString(deterministic=True)


FEATURE_SPEC = {
    "image_id": tf.io.FixedLenFeature([], tf.string),
    "product_id": tf.io.FixedLenFeature([], tf.string),
    "text": tf.io.FixedLenFeature([], tf.string),
    "token_ids": tf.io.VarLenFeature(tf.int64),
    "name": tf.io.FixedLenFeature([], tf.string, default_value=""),
    "name_token_ids": tf.io.VarLenFeature(tf.int64),
    "category_id": tf.io.FixedLenFeature([], tf.int64),
    "subcategory_id": tf.io.FixedLenFeature([], tf.int64),
    "pose": tf.io.FixedLenFeature([], tf.string),
    "crop_jpeg": tf.io.FixedLenFeature([], tf.string),
    "crop_box": tf.io.FixedLenFeature([4], tf.float32),
    "image_size": tf.io.FixedLenFeature([2], tf.int64),
    "foreground_found": tf.io.FixedLenFeature([], tf.int64),
    "align_token": tf.io.VarLenFeature(tf.int64),
    "align_patch": tf.io.VarLenFeature(tf.int64),
    "align_score": tf.io.VarLenFeature(tf.float32),
}


def parse(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
  """Parses one serialized example; variable-length fields become dense 1-D tensors."""
  parsed = tf.io.parse_single_example(serialized, FEATURE_SPEC)
  for key in ("token_ids", "name_token_ids", "align_token", "align_patch", "align_score"):
    parsed[key] = tf.sparse.to_dense(parsed[key])
  return parsed
