"""The Fashion-Gen HDF5 schema: written and read back exactly as the real files are laid out."""

import h5py
import numpy as np
import pytest

from kaleido.data import catalog
from kaleido.data import catalogs as catalog_files
from kaleido.data import fashiongen
from tests import catalogs


def test_schema_round_trip_with_latin1(tmp_path):
  path = str(tmp_path / "fg.h5")
  products = catalogs.fashiongen_products(4, descriptions=[
      "Appliqué crêpe de chine blouse.", "Plain tee.", "Denim jeans.", "Tote bag."])
  assert fashiongen.write_fashiongen(path, products) == 1 + 2 + 3 + 1
  with h5py.File(path, "r") as f:
    assert set(fashiongen.ALL_KEYS) <= set(f.keys())
    assert f["input_image"].shape == (7, 256, 256, 3) and f["input_image"].dtype == np.uint8
    for key in fashiongen.STRING_KEYS:
      assert f[key].shape == (7, 1) and f[key].dtype.kind == "S"
    assert f["input_productID"].shape == (7, 1)
    raw = f["input_description"][0][0]
  # Stored as latin-1 bytes, which are not valid UTF-8 (as in the real files).
  assert raw == "Appliqué crêpe de chine blouse.".encode("latin-1")
  with pytest.raises(UnicodeDecodeError):
    raw.decode("utf-8")

  reader = catalog_files.open_catalog(path)
  assert len(reader) == 7
  rows = reader.read(0, 7)
  assert rows[0].description == "Appliqué crêpe de chine blouse."
  assert [r.product_id for r in rows] == ["1000", "1001", "1001", "1002", "1002", "1002", "1003"]
  assert [r.pose for r in rows[3:6]] == ["id_gridfs_1", "id_gridfs_2", "id_gridfs_3"]
  np.testing.assert_array_equal(rows[2].image, products[1].images[1])
  assert rows[0].text("name_and_description").startswith("Dark t-shirts 0. Appliqué")
  assert [(r.category, r.subcategory) for r in reader.read(2, 4, with_images=False)] == [
      ("TOPS", "SHIRTS"), ("PANTS", "JEANS")]
  # Slices past the end are clipped, like the real streaming reads.
  assert [r.index for r in reader.read(5, 100)] == [5, 6]
  reader.close()


def test_missing_key_is_named(tmp_path):
  path = str(tmp_path / "fg.h5")
  fashiongen.write_fashiongen(path, catalogs.fashiongen_products(2))
  with h5py.File(path, "a") as f:
    del f["input_subcategory"]
  with pytest.raises(catalog.CatalogError, match="no key 'input_subcategory'"):
    catalog_files.open_catalog(path)


def test_not_hdf5_and_missing_file(tmp_path):
  bad = tmp_path / "bad.h5"
  bad.write_bytes(b"not an hdf5 file")
  with pytest.raises(catalog.CatalogError, match="Cannot open"):
    catalog_files.open_catalog(str(bad))
  with pytest.raises(catalog.CatalogError, match="does not exist"):
    catalog_files.open_catalog(str(tmp_path / "absent.h5"))
  with pytest.raises(catalog.CatalogError, match="unknown extension"):
    catalog_files.open_catalog(str(bad.rename(tmp_path / "bad.csv")))


def test_jsonl_rows_and_errors(tmp_path):
  rng = np.random.default_rng(1)
  image, _ = catalogs.product_image(rng, 96)
  catalogs.write_png(str(tmp_path), "good.png", image)
  (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8 garbage")
  base = {"text": "Red tee.", "product_id": "p1", "category": "TOPS", "subcategory": "TEES"}
  path = catalogs.write_jsonl(str(tmp_path), [
      {**base, "image": "good.png", "name": "Tee", "pose": "front"},
      {**base, "image": "absent.png"},
      {**base, "image": "corrupt.jpg"},
      "{not json",
      {"image": "good.png", "text": "No labels."},
  ])
  reader = catalog_files.open_catalog(path)
  rows = reader.read(0, len(reader))
  assert [r.error for r in rows] == [None, "missing_image_file", "corrupt_image", "invalid_json",
                                     "missing_field"]
  np.testing.assert_array_equal(rows[0].image, image)
  assert (rows[0].name, rows[0].pose, rows[0].category) == ("Tee", "front", "TOPS")
