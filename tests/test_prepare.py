"""data preparation: manifest counts with broken rows, reader output, interruption and resume."""

import glob
import os

import numpy as np
import pytest
import tensorflow as tf

from kaleido.data import fashiongen
from kaleido.patches import generator
from kaleido.records import manifest as manifest_lib
from kaleido.records import prepare
from kaleido.records import prepare_config
from kaleido.records import reader
from kaleido.records import worker
from tests import catalogs


def _config(catalog_path, output_dir, vocab_file, **overrides):
  settings = dict(input_path=catalog_path, output_dir=output_dir, vocab_file=vocab_file,
                  patch=generator.PatchConfig(patch_size=16), max_seq_length=12, workers=0,
                  chunk_rows=3, num_shards=3)
  settings.update(overrides)
  return prepare_config.PrepareConfig(**settings)


@pytest.fixture(name="fashiongen_catalog")
def fixture_fashiongen_catalog(tmp_path):
  descriptions = [f"Dark cotton tote {i}." for i in range(8)]
  descriptions[2] = "   "  # an empty text: skipped and counted
  descriptions[5] = " ".join(["cotton"] * 30)  # truncated to max_seq_length
  path = str(tmp_path / "catalog.h5")
  fashiongen.write_fashiongen(path, catalogs.fashiongen_products(8, descriptions=descriptions))
  return path, catalogs.write_vocab(str(tmp_path))


def _all_records(folder):
  records = []
  for path in sorted(glob.glob(os.path.join(folder, "examples-*.tfrecord"))):
    records += [r.numpy() for r in tf.data.TFRecordDataset(path)]
  return records


def test_manifest_counts_and_reader(fashiongen_catalog, tmp_path):
  catalog_path, vocab_file = fashiongen_catalog
  out = str(tmp_path / "out")
  manifest = prepare.prepare_catalog(_config(catalog_path, out, vocab_file))
  # 8 products with 1, 2, 3, 1, 2, 3, 1, 2 views = 15 rows; product 2 (3 rows) has no text.
  assert manifest.num_examples == 12
  assert manifest.num_skipped == 3 and manifest.skipped_reasons == {"empty_text": 3}
  assert manifest.num_products == 7
  assert manifest.num_truncated == 3  # product 5's three views
  assert manifest.num_patches == 55 and manifest.patch_size == 16
  assert manifest.categories == {"BAGS": 0, "PANTS": 1, "TOPS": 2}
  assert len(manifest.subcategories) == 4
  assert manifest.max_seq_length == 12 and len(manifest.vocab_hash) == 64
  assert sum(s["num_examples"] for s in manifest.shards) == 12
  assert manifest_lib.load(out) == manifest

  examples = list(reader.make_dataset(out).as_numpy_iterator())
  assert len(examples) == 12
  first = examples[0]
  assert first["patches"].shape == (55, 16, 16, 3) and first["patch_boxes"].shape == (55, 5)
  assert first["input_word_ids"].shape == (12,)
  ids = first["input_word_ids"][first["input_mask"] == 1]
  assert ids[0] == 2 and ids[-1] == 3  # [CLS] ... [SEP] of the test vocabulary
  assert first["text"].decode() == "Dark cotton tote 0."
  assert first["category_id"] == manifest.categories["TOPS"]
  assert first["num_alignments"] == 0 and (first["align_token"] == -1).all()
  # Product names ("Dark t-shirts 0") are stored with their own ids: the title read as the text.
  assert manifest.num_with_name == 12
  titles = next(reader.make_dataset(out, name_as_text=True).as_numpy_iterator())
  assert titles["text"].decode() == "Dark t-shirts 0" and titles["product_id"] == b"1000"
  title_ids = titles["input_word_ids"][titles["input_mask"] == 1].tolist()
  vocab = catalogs.VOCAB_TOKENS
  assert title_ids == [2] + [vocab.index(t) for t in ("dark", "t", "-", "shirts", "0")] + [3]
  truncated = [e for e in examples if e["product_id"] == b"1005"]
  assert all(e["input_mask"].sum() == 12 for e in truncated)
  # The product is dark on a light background: the L1 patch (the crop) is mostly dark.
  assert np.median(first["patches"][0]) < 170


def test_broken_jsonl_rows_are_counted_and_good_rows_kept(tmp_path):
  rng = np.random.default_rng(3)
  for i in range(4):
    catalogs.write_png(str(tmp_path), f"img{i}.png", catalogs.product_image(rng, 128)[0])
  (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
  base = {"text": "Red cotton shirt.", "category": "TOPS", "subcategory": "SHIRTS"}
  lines = [{**base, "image": f"img{i}.png", "product_id": f"p{i}"} for i in range(4)]
  lines += [{**base, "image": "missing.png", "product_id": "p9"},
            {**base, "image": "corrupt.jpg", "product_id": "p8"},
            "this is not json", {**base, "image": "img0.png", "product_id": "p7", "text": ""},
            {**base, "image": "img1.png", "product_id": "p6", "text": "\u200b\u00a0\u3000\ufeff"}]
  path = catalogs.write_jsonl(str(tmp_path), lines)
  manifest = prepare.prepare_catalog(
      _config(path, str(tmp_path / "out"), catalogs.write_vocab(str(tmp_path)), num_shards=2))
  assert manifest.num_examples == 4
  assert manifest.skipped_reasons == {"corrupt_image": 1, "empty_text": 2, "invalid_json": 1,
                                      "missing_image_file": 1}
  ids = sorted(e["product_id"] for e in reader.make_dataset(str(tmp_path / "out"))
               .as_numpy_iterator())
  assert ids == [b"p0", b"p1", b"p2", b"p3"]
  # No row has a name: ranking titles is refused with one sentence naming the fix.
  assert manifest.num_with_name == 0
  with pytest.raises(manifest_lib.ManifestError, match="holds no product names.*re-run"):
    reader.make_dataset(str(tmp_path / "out"), name_as_text=True)


def test_interrupted_run_resumes_to_identical_output(fashiongen_catalog, tmp_path, monkeypatch):
  catalog_path, vocab_file = fashiongen_catalog
  reference = str(tmp_path / "reference")
  prepare.prepare_catalog(_config(catalog_path, reference, vocab_file))

  interrupted = str(tmp_path / "interrupted")
  real_process_chunk = worker.process_chunk
  calls = []

  def crash_on_fourth_chunk(task):
    calls.append(task)
    if len(calls) == 4:
      raise KeyboardInterrupt("simulated interruption")
    return real_process_chunk(task)

  monkeypatch.setattr(worker, "process_chunk", crash_on_fourth_chunk)
  with pytest.raises(KeyboardInterrupt):
    prepare.prepare_catalog(_config(catalog_path, interrupted, vocab_file))
  # Shard 0 (rows 0-4, chunks 1-2) finished; shard 1 was cut mid-way and is not visible as done.
  assert os.path.exists(os.path.join(interrupted, prepare.shard_name(0, 3)))
  assert not os.path.exists(os.path.join(interrupted, prepare.shard_name(1, 3)))
  assert not os.path.exists(os.path.join(interrupted, manifest_lib.MANIFEST_NAME))
  with pytest.raises(manifest_lib.ManifestError, match="never finished"):
    manifest_lib.load(interrupted)

  calls.clear()
  monkeypatch.setattr(worker, "process_chunk", lambda task: (calls.append(task),
                                                             real_process_chunk(task))[1])
  manifest = prepare.prepare_catalog(_config(catalog_path, interrupted, vocab_file))
  assert min(task.start for task in calls) == 5  # shard 0 was not redone
  assert manifest == manifest_lib.load(reference)
  assert _all_records(interrupted) == _all_records(reference)
  assert not glob.glob(os.path.join(interrupted, "*.incomplete"))


@pytest.mark.parametrize("record", ["progress/shard-00001.json", prepare.SETTINGS_NAME])
def test_a_damaged_resume_record_redoes_its_part(fashiongen_catalog, tmp_path, record):
  """A truncated shard record redoes that shard, unreadable settings the whole preparation; the
  output is the same as an undisturbed run's."""
  catalog_path, vocab_file = fashiongen_catalog
  reference = str(tmp_path / "reference")
  prepare.prepare_catalog(_config(catalog_path, reference, vocab_file))
  damaged = str(tmp_path / "damaged")
  prepare.prepare_catalog(_config(catalog_path, damaged, vocab_file))
  os.remove(os.path.join(damaged, manifest_lib.MANIFEST_NAME))  # as if cut before the end
  path = os.path.join(damaged, record)
  with open(path, "rb") as f:
    content = f.read()
  with open(path, "wb") as f:
    f.write(content[:len(content) // 2])
  manifest = prepare.prepare_catalog(_config(catalog_path, damaged, vocab_file))
  assert manifest == manifest_lib.load(reference)
  assert _all_records(damaged) == _all_records(reference)


def test_changed_settings_are_refused_unless_overwrite(fashiongen_catalog, tmp_path):
  catalog_path, vocab_file = fashiongen_catalog
  out = str(tmp_path / "out")
  prepare.prepare_catalog(_config(catalog_path, out, vocab_file))
  with pytest.raises(prepare.PrepareError, match="patch differ"):
    prepare.prepare_catalog(_config(catalog_path, out, vocab_file,
                                    patch=generator.PatchConfig(patch_size=24)))
  manifest = prepare.prepare_catalog(_config(catalog_path, out, vocab_file, overwrite=True,
                                             patch=generator.PatchConfig(patch_size=24)))
  assert manifest.patch_size == 24
  assert next(iter(reader.make_dataset(out)))["patches"].shape == (55, 24, 24, 3)


def test_validation_split_reuses_label_ids(fashiongen_catalog, tmp_path):
  catalog_path, vocab_file = fashiongen_catalog
  train = str(tmp_path / "train")
  prepare.prepare_catalog(_config(catalog_path, train, vocab_file))
  products = catalogs.fashiongen_products(3, seed=5)
  products[0].category = "SHOES"  # not in the training labels
  validation_path = str(tmp_path / "validation.h5")
  fashiongen.write_fashiongen(validation_path, products)
  manifest = prepare.prepare_catalog(_config(validation_path, str(tmp_path / "validation"),
                                             vocab_file, label_maps_from=train))
  assert manifest.categories == manifest_lib.load(train).categories
  assert manifest.num_unknown_labels == 1
