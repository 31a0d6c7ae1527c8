"""The classical foreground estimator and the crop stage of the Kaleido Patch Generator."""

import cv2
import numpy as np

from kaleido.data import catalogs as catalog_files
from kaleido.demo import foreground_quality
from kaleido.demo import groundtruth
from kaleido.patches import foreground
from kaleido.patches import generator
from tests import catalogs




def test_classical_finds_products_on_studio_background():
  rng = np.random.default_rng(0)
  estimator = foreground.ClassicalForeground()
  ious = []
  for _ in range(20):
    image, true_box = catalogs.product_image(rng)
    box, found = foreground.foreground_box(estimator.mask(image), 0.005)
    assert found
    ious.append(foreground_quality.box_iou(box, true_box))
  assert min(ious) > 0.95


def test_largest_component_wins_and_holes_are_filled():
  image = np.full((128, 128, 3), 240, np.uint8)
  cv2.rectangle(image, (20, 30), (99, 109), (40, 40, 120), -1)  # the product
  cv2.rectangle(image, (45, 55), (74, 84), (240, 240, 240), -1)  # a white logo inside it
  cv2.circle(image, (5, 120), 2, (0, 0, 0), -1)  # a speck of dust
  mask = foreground.ClassicalForeground().mask(image)
  assert groundtruth.mask_box(mask) == (20, 30, 100, 110)
  assert mask[70, 60]  # the logo hole belongs to the product


def test_no_foreground_falls_back_to_whole_image():
  blank = np.full((64, 80, 3), 235, np.uint8)
  mask = foreground.ClassicalForeground().mask(blank)
  assert foreground.foreground_box(mask, 0.005) == ((0, 0, 80, 64), False)
  crop, = generator.KaleidoPatchGenerator().crops([blank])
  assert not crop.foreground_found
  np.testing.assert_allclose(crop.crop_box, [0, 0, 1, 1])


def test_crop_is_square_with_margin_and_capped_in_size():
  image = np.full((256, 256, 3), 240, np.uint8)
  cv2.rectangle(image, (100, 40), (149, 239), (30, 60, 90), -1)  # 50 x 200 product
  config = generator.PatchConfig(patch_size=16, crop_margin=0.05)
  crop, = generator.KaleidoPatchGenerator(config).crops([image])
  assert crop.foreground_found
  x1, y1, x2, y2 = crop.crop_box * 256
  assert abs((x2 - x1) - (y2 - y1)) < 1e-3  # square
  assert abs((x2 - x1) - 220) <= 1  # 200 px + 5% on each side
  assert y1 <= 40 and y2 >= 240 and x1 <= 100 and x2 >= 150
  decoded = cv2.imdecode(np.frombuffer(crop.crop_jpeg, np.uint8), cv2.IMREAD_COLOR)
  assert decoded.shape == (80, 80, 3)  # stored at most 5 x patch_size: L5 never needs more


def test_classical_box_iou_on_the_demo_catalog(tmp_path):
  from kaleido.demo import generator as demo  # pylint: disable=g-import-not-at-top
  path = str(tmp_path / "demo.h5")
  demo.make_demo_catalog(path, 80, seed=7)
  catalog = catalog_files.open_catalog(path)
  report = foreground_quality.box_quality(foreground.ClassicalForeground(),
                                          catalog.read(0, len(catalog)), groundtruth.load(path),
                                          min_area_fraction=0.005)
  assert report.num_images > 150
  assert report.share_above >= 0.95  # the bar: IoU >= 0.9 on at least 95% of images
  assert report.mean_iou > 0.95


def test_no_foreground_estimator_crops_the_whole_image():
  image, _ = catalogs.product_image(np.random.default_rng(5), 96)
  patcher = generator.KaleidoPatchGenerator(generator.PatchConfig(
      patch_size=16, foreground=foreground.ForegroundConfig(method="none")))
  crop = patcher.crops([image])[0]
  np.testing.assert_array_equal(crop.crop_box, [0.0, 0.0, 1.0, 1.0])
  assert crop.foreground_found
