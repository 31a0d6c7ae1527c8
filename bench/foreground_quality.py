r"""Foreground-box quality against the demo catalog's ground truth (a measurement, not a test).

  python bench/foreground_quality.py --num_products 500 [--unet_checkpoint DIR]

Prints the share of images whose predicted product box has IoU >= 0.9 with the true box, the mean
IoU and the images/s of each estimator.
"""

import os
import tempfile
import time

from absl import app
from absl import flags

_NUM_PRODUCTS = flags.DEFINE_integer("num_products", 500, "Demo catalog size.")
_SEED = flags.DEFINE_integer("seed", 1, "Demo catalog seed.")
_CATALOG = flags.DEFINE_string("catalog", "", "An existing demo catalog (default: generate one).")
_UNET_CHECKPOINT = flags.DEFINE_string("unet_checkpoint", "", "Also measure this UNet.")


def main(argv):
  del argv
  from kaleido.data import catalog as catalog_lib  # pylint: disable=g-import-not-at-top
  from kaleido.data import catalogs
  from kaleido.demo import foreground_quality  # pylint: disable=g-import-not-at-top
  from kaleido.demo import generator as demo  # pylint: disable=g-import-not-at-top
  from kaleido.demo import groundtruth  # pylint: disable=g-import-not-at-top
  from kaleido.patches import foreground  # pylint: disable=g-import-not-at-top

  with tempfile.TemporaryDirectory() as tmp:
    path = _CATALOG.value
    if not path:
      path = os.path.join(tmp, "demo.h5")
      demo.make_demo_catalog(path, _NUM_PRODUCTS.value, _SEED.value)
    catalog = catalogs.open_catalog(path)
    truths = groundtruth.load(path)
    rows = catalog.read(0, len(catalog))
    methods = {"classical": foreground.ForegroundConfig()}
    if _UNET_CHECKPOINT.value:
      methods["unet"] = foreground.ForegroundConfig(method="unet",
                                                    unet_checkpoint=_UNET_CHECKPOINT.value)
    for name, config in methods.items():
      estimator = foreground.build_estimator(config)
      start = time.monotonic()
      report = foreground_quality.box_quality(estimator, rows, truths, config.min_area_fraction)
      seconds = time.monotonic() - start
      print(f"{name}: images={report.num_images} share_iou_ge_0.9={report.share_above:.4f} "
            f"mean_iou={report.mean_iou:.4f} min_iou={report.min_iou:.4f} "
            f"fallbacks={report.num_fallbacks} images_per_s={report.num_images / seconds:.0f}")


if __name__ == "__main__":
  app.run(main)
