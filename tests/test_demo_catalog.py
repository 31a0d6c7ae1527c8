"""The demo catalog: reproducible, in the Fashion-Gen schema, with consistent ground truth."""

import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from kaleido import errors
from kaleido.data import catalog
from kaleido.data import catalogs as catalog_files
from kaleido.data import fashiongen
from kaleido.demo import garments
from kaleido.demo import generator
from kaleido.demo import groundtruth
from kaleido.demo import pipeline
from kaleido.demo import text

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_PRODUCTS = 120
SEED = 11


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
  """A catalog of NUM_PRODUCTS products, its rows and its ground truth."""
  path = str(tmp_path_factory.mktemp("demo") / "catalog.h5")
  summary = generator.make_demo_catalog(path, NUM_PRODUCTS, SEED)
  opened = catalog_files.open_catalog(path)
  rows = opened.read(0, len(opened))
  labels = [(row.category, row.subcategory) for row in rows]
  opened.close()
  return summary, rows, labels, groundtruth.load(path)


def _files(folder: str) -> dict[str, bytes]:
  contents = {}
  for root, _, names in os.walk(folder):
    for name in names:
      with open(os.path.join(root, name), "rb") as f:
        contents[os.path.relpath(os.path.join(root, name), folder)] = f.read()
  return contents


@pytest.mark.parametrize("fmt", ["h5", "jsonl"])
def test_same_seed_writes_identical_files(tmp_path, fmt):
  for folder, seed in (("a", 3), ("b", 3), ("c", 4)):
    generator.make_demo_catalog(str(tmp_path / folder / f"catalog.{fmt}"), 12, seed, fmt=fmt)
  first, again, other = (_files(str(tmp_path / f)) for f in "abc")
  assert first == again
  assert first[f"catalog.{fmt}"] != other[f"catalog.{fmt}"]
  assert first["catalog.groundtruth.json"] != other["catalog.groundtruth.json"]


def test_first_products_do_not_depend_on_catalog_size(tmp_path):
  small, large = str(tmp_path / "small.h5"), str(tmp_path / "large.h5")
  generator.make_demo_catalog(small, 4, 5)
  generator.make_demo_catalog(large, 9, 5)
  with h5py.File(small, "r") as f, h5py.File(large, "r") as g:
    n = f[fashiongen.IMAGE_KEY].shape[0]
    assert g[fashiongen.IMAGE_KEY].shape[0] > n
    for key in (fashiongen.IMAGE_KEY, "input_productID", "input_description", "input_pose"):
      np.testing.assert_array_equal(f[key][:], g[key][:n])


def test_disjoint_product_ranges_make_splits(tmp_path):
  large, tail = str(tmp_path / "large.h5"), str(tmp_path / "tail.h5")
  generator.make_demo_catalog(large, 9, 5)
  generator.make_demo_catalog(tail, 3, 5, first_product=6)
  with h5py.File(large, "r") as f, h5py.File(tail, "r") as g:
    ids = f["input_productID"][:, 0]
    tail_ids = g["input_productID"][:, 0]
    assert sorted(set(tail_ids)) == sorted(set(ids))[6:]
    rows = np.isin(ids, tail_ids)
    np.testing.assert_array_equal(f[fashiongen.IMAGE_KEY][rows], g[fashiongen.IMAGE_KEY][:])


def test_fashiongen_schema(demo):
  summary, _, _, _ = demo
  with h5py.File(summary.path, "r") as f:
    assert set(f.keys()) == set(fashiongen.ALL_KEYS)
    n = f[fashiongen.IMAGE_KEY].shape[0]
    assert n == summary.num_images
    assert f[fashiongen.IMAGE_KEY].shape == (n, 256, 256, 3)
    assert f[fashiongen.IMAGE_KEY].dtype == np.uint8
    for key in fashiongen.STRING_KEYS:
      assert f[key].shape == (n, 1) and f[key].dtype.kind == "S", key
    assert f["input_productID"].shape == (n, 1)
    assert f["input_msrpUSD"].shape == (n, 1)


def test_round_trip_through_the_catalog_reader(demo):
  summary, rows, labels, _ = demo
  assert len(rows) == summary.num_images and summary.num_products == NUM_PRODUCTS
  assert all(row.error is None and row.image.shape == (256, 256, 3) for row in rows)
  assert len({c for c, _ in labels}) >= 8 and len(set(labels)) >= 20
  assert summary.num_subcategories == len(set(labels))
  expected = [generator.make_product(SEED, i) for i in range(NUM_PRODUCTS)]
  runs = [(p.product_id, pose) for p in expected for pose in p.poses]
  assert [(int(row.product_id), row.pose) for row in rows] == runs  # views consecutive, in order
  by_id = {p.product_id: p for p in expected}
  for row in rows:
    product = by_id[int(row.product_id)]
    assert (row.name, row.description) == (product.text.name, product.text.description)
    assert (row.category, row.subcategory) == (product.garment.category,
                                               product.garment.subcategory)
  accented = [row.description for row in rows if any(ord(c) > 127 for c in row.description)]
  assert accented and any(word in accented[0] for word in ("é", "ê", "è"))


def test_ground_truth_matches_the_images(demo):
  summary, rows, _, truths = demo
  assert [t.row for t in truths] == list(range(summary.num_images))
  for row, truth in zip(rows, truths):
    assert truth.product_id == row.product_id
    assert truth.foreground_mask.shape == (256, 256)
    assert truth.foreground_mask.mean() > 0.03
    assert truth.foreground_box == groundtruth.mask_box(truth.foreground_mask)
    x1, y1, x2, y2 = truth.foreground_box
    assert x1 > 0 and y1 > 0 and x2 < 256 and y2 < 256  # the product is not cut off
    words = set(text.tokens(f"{row.name} {row.description}"))
    kinds = {w.kind for w in truth.words}
    assert {"colour", "category"} <= kinds
    for word in truth.words:
      bx1, by1, bx2, by2 = word.box
      assert 0 <= bx1 < bx2 <= 256 and 0 <= by1 < by2 <= 256
      assert x1 - 2 <= bx1 and y1 - 2 <= by1 and bx2 <= x2 + 2 and by2 <= y2 + 2, word
      assert word.word in words, (word, row.description)


def test_details_are_named_only_where_visible(demo):
  _, rows, _, truths = demo
  detail_words = {w for words in text.DETAIL_WORDS.values() for w in words}
  back_logos = 0
  for row, truth in zip(rows, truths):
    details = [w for w in truth.words if w.kind == "detail"]
    assert all(w.word in detail_words for w in details)
    logos = [w for w in details if w.word == "logo"]
    if row.pose == "id_gridfs_2" and row.category != "SHOES":  # a back view
      back_logos += len(logos)
  assert back_logos == 0
  assert sum(w.kind == "detail" for t in truths for w in t.words) > len(truths) // 2


def test_named_colour_matches_the_pixels(demo):
  """The median colour of a solid garment's body is (nearly always) nearest its named colour."""
  _, rows, _, truths = demo
  names = list(garments.COLOURS)
  palette = np.array([garments.COLOURS[n] for n in names], np.float64)
  checked = nearest = 0
  for row, truth in zip(rows, truths):
    colours = {w.word: w.box for w in truth.words if w.kind == "colour"}
    patterned = any(w.kind == "pattern" and w.word != "solid" for w in truth.words)
    if len(colours) != 1 or patterned:
      continue
    (name, (x1, y1, x2, y2)), = colours.items()
    pixels = row.image[y1:y2, x1:x2][truth.foreground_mask[y1:y2, x1:x2]]
    median = np.median(pixels, axis=0)
    assert np.linalg.norm(median - garments.COLOURS[name]) < 60, (row.name, median)
    checked += 1
    nearest += names[int(np.argmin(np.linalg.norm(palette - median, axis=1)))] == name
  assert checked > 100 and nearest >= 0.95 * checked


def test_jsonl_catalog_has_the_same_products(tmp_path):
  h5_path, jsonl_path = str(tmp_path / "c.h5"), str(tmp_path / "c.jsonl")
  generator.make_demo_catalog(h5_path, 12, 2)
  summary = generator.make_demo_catalog(jsonl_path, 12, 2, fmt="jsonl")
  h5, jsonl = catalog_files.open_catalog(h5_path), catalog_files.open_catalog(jsonl_path)
  assert len(jsonl) == len(h5) == summary.num_images == len(groundtruth.load(jsonl_path))
  def labels(opened):
    return [(r.category, r.subcategory) for r in opened.read(0, len(opened), with_images=False)]

  assert labels(jsonl) == labels(h5)
  for a, b in zip(h5.read(0, len(h5)), jsonl.read(0, len(jsonl))):
    assert b.error is None
    assert (a.product_id, a.name, a.description, a.pose) == (
        b.product_id, b.name, b.description, b.pose)
    np.testing.assert_array_equal(a.image, b.image)  # PNG is lossless


@pytest.mark.parametrize("path,count,fmt,message", [
    ("c.h5", 0, "h5", "at least 1 product"),
    ("c.h5", 3, "xml", "Unknown demo catalog format"),
    ("c.h5", 3, "jsonl", "does not end in .jsonl"),
    ("c.jsonl", 3, "h5", "does not end in .h5"),
])
def test_bad_arguments_are_one_sentence_errors(tmp_path, path, count, fmt, message):
  with pytest.raises(errors.KaleidoError, match=message):
    generator.make_demo_catalog(str(tmp_path / path), count, 0, fmt=fmt)


def test_command_line(tmp_path):
  script = os.path.join(REPO_ROOT, "data", "make_demo.py")
  output = tmp_path / "new" / "demo.h5"
  done = subprocess.run([sys.executable, script, "--output", str(output), "--num_products", "3",
                         "--seed", "1"], capture_output=True, text=True, check=False)
  assert done.returncode == 0, done.stderr
  assert "3 products" in done.stdout and str(output) in done.stdout
  assert os.path.exists(groundtruth.sidecar_path(str(output)))
  failed = subprocess.run([sys.executable, script, "--output", str(output), "--num_products", "0"],
                          capture_output=True, text=True, check=False)
  assert failed.returncode == 1
  assert failed.stderr.strip().splitlines() == [
      "error: The demo catalog needs at least 1 product (--num_products), got 0."]


def test_the_demo_data_set_says_where_it_is_built(tmp_path):
  from kaleido.demo import pipeline  # pylint: disable=g-import-not-at-top
  lines = []
  config = pipeline.DemoConfig(work_dir=str(tmp_path / "demo"), num_train_products=3,
                               num_validation_products=2, num_development_products=2,
                               patch_size=16, vocab_size=300, workers=0)
  data = pipeline.ensure_demo_data(config, log=lines.append)
  assert lines[0] == (f"The demo data set is in {tmp_path / 'demo'}; missing parts are built "
                      "there.")
  assert any(line.startswith("Prepared") and data.development_dir in line for line in lines)


def test_a_copy_of_the_demo_vocabulary_names_the_demo_folders(tmp_path):
  (tmp_path / "vocab.txt").write_text("[PAD]\na\n")
  (tmp_path / "copy.txt").write_text("[PAD]\na\n")
  (tmp_path / "other.txt").write_text("[PAD]\nb\n")
  own = pipeline.demo_paths(str(tmp_path), str(tmp_path / "copy.txt"))
  assert own.train_dir == str(tmp_path / "prepared" / "train")
  assert own.vocab_file == str(tmp_path / "vocab.txt")
  other = pipeline.demo_paths(str(tmp_path), str(tmp_path / "other.txt"))
  assert "prepared-vocab-" in other.train_dir and other.vocab_file == str(tmp_path / "other.txt")
