"""The reader: alignment pairs (strongest first, padded, cut to max_alignments) and product names."""

import numpy as np
import tensorflow as tf

from kaleido.patches import generator
from kaleido.records import reader
from kaleido.records import schema


def _serialized(tokens, patches, scores) -> tf.Tensor:
  crop = np.full((40, 40, 3), 120, np.uint8)
  return tf.constant(schema.serialize(schema.PreparedExample(
      image_id="c:0", product_id="p", text="red tee", token_ids=[2, 7, 8, 3], category_id=0,
      subcategory_id=0, pose="", crop_jpeg=generator.encode_jpeg(crop, 95),
      crop_box=np.array([0.1, 0.1, 0.9, 0.9], np.float32), image_size=(64, 64),
      foreground_found=True, align_token=tokens, align_patch=patches, align_score=scores)))


def test_alignments_keep_the_strongest_pairs():
  config = reader.ReaderConfig(max_seq_length=6, patch_size=8, max_alignments=2)
  example = reader.decode(_serialized([1, 2, 1, 2], [5, 20, 31, 44], [0.2, 0.9, 0.5, 0.7]),
                          config)
  assert example["align_token"].numpy().tolist() == [2, 2]
  assert example["align_patch"].numpy().tolist() == [20, 44]
  np.testing.assert_allclose(example["align_score"].numpy(), [0.9, 0.7])
  assert int(example["num_alignments"]) == 2
  assert example["input_word_ids"].numpy().tolist() == [2, 7, 8, 3, 0, 0]


def test_no_alignments_are_padding():
  config = reader.ReaderConfig(max_seq_length=6, patch_size=8, max_alignments=3)
  example = reader.decode(_serialized([], [], []), config)
  assert example["align_token"].numpy().tolist() == [-1, -1, -1]
  assert int(example["num_alignments"]) == 0


def _named(name: str, name_ids) -> tf.Tensor:
  crop = np.full((40, 40, 3), 120, np.uint8)
  return tf.constant(schema.serialize(schema.PreparedExample(
      image_id="c:0", product_id="p", text="red cotton tee with a pocket",
      token_ids=[2, 7, 8, 9, 10, 3], name=name, name_token_ids=name_ids, category_id=0,
      subcategory_id=0, pose="", crop_jpeg=generator.encode_jpeg(crop, 95),
      crop_box=np.array([0.1, 0.1, 0.9, 0.9], np.float32), image_size=(64, 64),
      foreground_found=True)))


def test_name_as_text_reads_the_title_and_falls_back_to_the_text_without_one():
  config = reader.ReaderConfig(max_seq_length=6, patch_size=8, name_as_text=True)
  named = reader.decode(_named("Red tee", [2, 7, 3]), config)
  assert named["input_word_ids"].numpy().tolist() == [2, 7, 3, 0, 0, 0]
  assert named["input_mask"].numpy().tolist() == [1, 1, 1, 0, 0, 0]
  assert named["text"].numpy() == b"Red tee"
  unnamed = reader.decode(_named("", []), config)
  assert unnamed["input_word_ids"].numpy().tolist() == [2, 7, 8, 9, 10, 3]
  assert unnamed["text"].numpy() == b"red cotton tee with a pocket"
  described = reader.decode(_named("Red tee", [2, 7, 3]),
                            reader.ReaderConfig(max_seq_length=6, patch_size=8))
  assert described["input_word_ids"].numpy().tolist() == [2, 7, 8, 9, 10, 3]
