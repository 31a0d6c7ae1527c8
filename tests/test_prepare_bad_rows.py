"""Preparation never writes a bad row wrongly: each is skipped and counted by its own reason;
label maps come from the rows written; shards are byte-reproducible and checked by size/SHA-256."""

import json
import os
import struct
import subprocess
import sys
import zlib

import cv2
import numpy as np
import pytest

from kaleido.data import catalogs as catalog_files
from kaleido.data import fashiongen
from kaleido.data import images
from kaleido.patches import generator
from kaleido.records import manifest as manifest_lib
from kaleido.records import prepare
from kaleido.records import prepare_config
from kaleido.records import reader
from tests import catalogs

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE = {"text": "Red cotton shirt.", "category": "TOPS", "subcategory": "SHIRTS"}


def _config(catalog_path, output_dir, vocab_file, **overrides):
  settings = dict(input_path=catalog_path, output_dir=output_dir, vocab_file=vocab_file,
                  patch=generator.PatchConfig(patch_size=16), max_seq_length=12, workers=0)
  return prepare_config.PrepareConfig(**{**settings, **overrides})


def _images(folder, count):
  rng = np.random.default_rng(5)
  for i in range(count):
    catalogs.write_png(str(folder), f"img{i}.png", catalogs.product_image(rng, 96)[0])


def _written_ids(folder):
  return sorted(e["product_id"].decode() for e in reader.make_dataset(folder).as_numpy_iterator())


def test_jsonl_rows_that_would_be_written_wrong_are_skipped_by_reason(tmp_path):
  _images(tmp_path, 3)
  image = cv2.imread(str(tmp_path / "img0.png"))
  jpeg = cv2.imencode(".jpg", image)[1].tobytes()
  (tmp_path / "truncated.jpg").write_bytes(jpeg[:len(jpeg) * 2 // 3])
  lines = [
      {**BASE, "image": "img0.png", "product_id": "first"},  # preceded by a byte-order mark
      {**BASE, "image": "truncated.jpg", "product_id": "p1"},
      {**BASE, "image": "img1.png", "product_id": "p2", "text": None},
      {**BASE, "image": "img1.png", "product_id": "p3", "text": ["red", "shirt"]},
      {**BASE, "image": "img1.png", "product_id": "p4", "category": None},
      {**BASE, "image": "img1.png", "product_id": None},
      {**BASE, "image": "img2.png", "product_id": 7, "name": None},  # integer id, null name: fine
  ]
  path = tmp_path / "catalog.jsonl"
  with open(path, "wb") as f:
    f.write(b"\xef\xbb\xbf")
    for line in lines:
      f.write(json.dumps(line).encode() + b"\n")
    f.write(json.dumps({**BASE, "image": "img2.png", "product_id": "p5"}).encode()
            .replace(b"Red", b"R\xe9d") + b"\n")  # latin-1 bytes: not UTF-8
  manifest = prepare.prepare_catalog(
      _config(str(path), str(tmp_path / "out"), catalogs.write_vocab(str(tmp_path))))
  assert manifest.skipped_reasons == {
      "truncated_image": 1, "invalid_text": 2, "invalid_category": 1, "invalid_product_id": 1,
      "invalid_utf8": 1}
  assert _written_ids(str(tmp_path / "out")) == ["7", "first"]


def test_truncated_and_corrupt_files_are_told_apart_and_whole_ones_decode():
  rng = np.random.default_rng(0)
  picture = cv2.GaussianBlur((rng.random((60, 40, 3)) * 255).astype(np.uint8), (9, 9), 3)
  for params in ([], [cv2.IMWRITE_JPEG_PROGRESSIVE, 1], [cv2.IMWRITE_JPEG_RST_INTERVAL, 1]):
    data = cv2.imencode(".jpg", picture, params)[1].tobytes()
    assert images.decode(data)[0].shape == (60, 40, 3)
    assert images.decode(data + b"trailer")[1] is None  # bytes after the end marker are fine
    for cut in (len(data) // 2, len(data) - 1):
      assert images.decode(data[:cut]) == (None, images.TRUNCATED)
  png = cv2.imencode(".png", picture)[1].tobytes()
  assert images.decode(png)[1] is None and images.decode(png[:-4]) == (None, images.TRUNCATED)
  assert images.decode(b"\xff\xd8 not a jpeg") == (None, images.CORRUPT)
  assert images.decode(b"") == (None, images.CORRUPT)  # a 0-byte file


def _with_declared_size(png: bytes, width: int, height: int) -> bytes:
  """`png` whose IHDR claims another size (CRC fixed), as a decompression bomb's header does."""
  header = png[12:16] + struct.pack(">II", width, height) + png[24:29]
  return png[:8] + png[8:12] + header + struct.pack(">I", zlib.crc32(header)) + png[33:]


def test_huge_declared_sizes_are_refused_before_decoding_and_odd_formats_become_rgb():
  small = cv2.imencode(".png", np.full((4, 4, 3), 200, np.uint8))[1].tobytes()
  assert images.declared_size(small) == (4, 4)
  bomb = _with_declared_size(small, 20000, 20000)
  assert images.declared_size(bomb) == (20000, 20000)
  assert images.decode(bomb) == (None, images.TOO_LARGE)
  jpeg = cv2.imencode(".jpg", np.full((30, 50, 3), 90, np.uint8))[1].tobytes()
  assert images.declared_size(jpeg) == (50, 30)
  # RGBA: a transparent background is white, an opaque product keeps its colour (BGR in, RGB out).
  rgba = np.zeros((8, 8, 4), np.uint8)
  rgba[..., :3] = (255, 0, 0)  # blue under every pixel, as exporters leave it
  rgba[2:6, 2:6, 3] = 255
  decoded, problem = images.decode(cv2.imencode(".png", rgba)[1].tobytes())
  assert problem is None
  np.testing.assert_array_equal(decoded[0, 0], [255, 255, 255])
  np.testing.assert_array_equal(decoded[3, 3], [0, 0, 255])
  sixteen = np.full((6, 6, 3), 0x8001, np.uint16)
  grey = np.full((6, 6), 77, np.uint8)
  for picture, value in ((sixteen, 0x80), (grey, 77)):
    decoded, problem = images.decode(cv2.imencode(".png", picture)[1].tobytes())
    assert problem is None and decoded.shape == (6, 6, 3) and (decoded == value).all()


def test_labels_come_from_written_rows_and_conflicts_keep_the_first(tmp_path):
  _images(tmp_path, 3)
  path = catalogs.write_jsonl(str(tmp_path), [
      {**BASE, "image": "img0.png", "product_id": "a"},
      {**BASE, "image": "img1.png", "product_id": "a", "category": "PANTS"},  # conflicts
      {"image": "img2.png", "text": "No labels.", "product_id": "b"},  # skipped: missing field
      {**BASE, "image": "img2.png", "product_id": "c", "category": "BAGS"},
      {**BASE, "image": "img1.png", "product_id": "d", "category": "SHOES", "text": ""},
  ])
  manifest = prepare.prepare_catalog(
      _config(path, str(tmp_path / "out"), catalogs.write_vocab(str(tmp_path))))
  # No phantom class from the skipped rows (the missing category, the empty text's SHOES), and
  # PANTS only came from the conflicting row.
  assert manifest.categories == {"BAGS": 0, "TOPS": 1}
  assert manifest.skipped_reasons == {"conflicting_labels": 1, "missing_field": 1,
                                      "empty_text": 1}
  labels = {e["product_id"]: e["category_id"] for e in
            reader.make_dataset(str(tmp_path / "out")).as_numpy_iterator()}
  assert labels == {b"a": 1, b"c": 0}


@pytest.mark.parametrize("encoding, string_ids", [("utf-8", True), ("latin-1", False)])
def test_fashiongen_text_encoding_is_detected_and_string_ids_read(tmp_path, encoding,
                                                                   string_ids):
  path = str(tmp_path / "catalog.h5")
  descriptions = ["Appliqué crêpe blouse.", "Plain tote."]
  fashiongen.write_fashiongen(path, catalogs.fashiongen_products(2, descriptions=descriptions),
                              text_encoding=encoding, string_product_ids=string_ids)
  opened = catalog_files.open_catalog(path)
  assert opened.text_encoding == encoding
  rows = opened.read(0, len(opened), with_images=False)
  assert rows[0].description == descriptions[0] and rows[0].product_id == "1000"
  manifest = prepare.prepare_catalog(
      _config(path, str(tmp_path / "out"), catalogs.write_vocab(str(tmp_path))))
  assert manifest.text_encoding == encoding and manifest.num_skipped == 0
  texts = {e["text"].decode() for e in reader.make_dataset(str(tmp_path / "out"))
           .as_numpy_iterator()}
  assert descriptions[0] in texts


def test_ascii_only_text_reads_as_latin1_and_bad_utf8_rows_are_counted():
  assert fashiongen.detect_encoding([b"plain", b"ascii"]) == "latin-1"
  assert fashiongen.detect_encoding([b"plain", "crêpe".encode("latin-1")]) == "latin-1"
  assert fashiongen.detect_encoding([b"plain", "crêpe".encode()]) == "utf-8"


def test_shards_are_byte_reproducible_and_checked(tmp_path):
  path = str(tmp_path / "catalog.h5")
  fashiongen.write_fashiongen(path, catalogs.fashiongen_products(6))
  vocab_file = catalogs.write_vocab(str(tmp_path))
  first, second = str(tmp_path / "first"), str(tmp_path / "second")
  manifest = prepare.prepare_catalog(_config(path, first, vocab_file, num_shards=2))
  prepare.prepare_catalog(_config(path, second, vocab_file, num_shards=2, workers=2))
  for shard in manifest.shards:
    with open(os.path.join(first, shard["file"]), "rb") as a, \
         open(os.path.join(second, shard["file"]), "rb") as b:
      assert a.read() == b.read()
  manifest_lib.check_shards(first, manifest, sha256=True)
  # The same size but other bytes: only the SHA-256 tells, via data/prepare.py --verify.
  shard_path = manifest.shard_paths(first)[1]
  data = bytearray(open(shard_path, "rb").read())
  data[len(data) // 2] ^= 0xFF
  open(shard_path, "wb").write(bytes(data))
  verify = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "data", "prepare.py"),
                           "--verify", f"--output_dir={first}"], capture_output=True,
                          text=True, timeout=300, check=False)
  errors = [line for line in verify.stderr.splitlines() if line.startswith("error:")]
  assert verify.returncode == 1 and len(errors) == 1
  assert "does not have the SHA-256" in errors[0] and "--overwrite" in errors[0]
  # A truncated shard is refused when the data is read, naming the shard and the command.
  open(shard_path, "wb").write(bytes(data[:len(data) // 2]))
  with pytest.raises(manifest_lib.ManifestError,
                     match=r"examples-00001-of-00002.*truncated.*data/prepare.py --input"):
    reader.make_dataset(first)


def test_a_folder_of_no_examples_is_one_sentence(tmp_path):
  path = catalogs.write_jsonl(str(tmp_path), ["not json", "nor this"])
  prepare.prepare_catalog(_config(path, str(tmp_path / "out"), catalogs.write_vocab(str(tmp_path))))
  with pytest.raises(manifest_lib.ManifestError, match="holds no examples.*invalid_json: 2"):
    reader.make_dataset(str(tmp_path / "out"))


def test_a_large_photo_is_judged_at_the_working_size_with_the_same_box():
  from kaleido.patches import foreground  # pylint: disable=g-import-not-at-top
  image = np.full((3000, 2000, 3), 250, np.uint8)
  image[600:2400, 500:1500] = (40, 60, 160)  # a product on a light background
  mask = foreground.ClassicalForeground().mask(image)
  assert mask.shape == (3000, 2000)
  rows, cols = np.nonzero(mask)
  assert abs(rows.min() - 600) <= 3 and abs(rows.max() - 2399) <= 3
  assert abs(cols.min() - 500) <= 3 and abs(cols.max() - 1499) <= 3
