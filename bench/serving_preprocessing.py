r"""The exported graph's preprocessing against data/prepare.py's, image by image.

  python bench/serving_preprocessing.py --catalog workdir/demo/catalog/validation.h5

Each catalog image goes in as PNG bytes (lossless, so any difference is the preprocessing's):
prints the crop-box IoU against the patch generator's box (share >= 0.98, and every image
below), whether the foreground was found the same way, the largest pixel difference of the 55
patches (the generator's stored JPEG crop decoded, as training sees it) and the time per image.
"""

import time

from absl import app
from absl import flags
import cv2
import numpy as np
import tensorflow as tf

from kaleido.data import catalogs
from kaleido.demo.foreground_quality import box_iou
from kaleido.patches import cutting
from kaleido.patches import generator
from kaleido.serving import preprocessing

_CATALOG = flags.DEFINE_string("catalog", "workdir/demo/catalog/validation.h5",
                               "A Fashion-Gen style HDF5 or JSON-lines catalog.")
_LIMIT = flags.DEFINE_integer("limit", 0, "Only the first N images (0: all).")
_PATCH_SIZE = flags.DEFINE_integer("patch_size", 64, "Side of the stored patches.")


def main(argv):
  del argv
  catalog = catalogs.open_catalog(_CATALOG.value)
  count = len(catalog) if not _LIMIT.value else min(_LIMIT.value, len(catalog))
  config = generator.PatchConfig(patch_size=_PATCH_SIZE.value)
  patch_generator = generator.KaleidoPatchGenerator(config)
  in_graph = tf.function(lambda image_bytes: preprocessing.image_inputs(image_bytes, config))
  ious, pixel_differences, found_differs, seconds = [], [], [], 0.0
  for row in catalog.read(0, count):
    reference = patch_generator.crops([row.image])[0]
    png = cv2.imencode(".png", cv2.cvtColor(row.image, cv2.COLOR_RGB2BGR))[1].tobytes()
    start = time.perf_counter()
    served = in_graph(tf.constant(png))
    seconds += time.perf_counter() - start
    ious.append(box_iou(np.asarray(reference.crop_box, float), served["crop_box"].numpy()))
    stored = cutting.cut_patches(tf.io.decode_jpeg(reference.crop_jpeg, channels=3),
                                 config.patch_size).numpy().astype(int)
    pixel_differences.append(int(np.abs(stored - served["patches"].numpy().astype(int)).max()))
    if bool(served["foreground_found"]) != reference.foreground_found:
      found_differs.append(row.index)
  ious = np.asarray(ious)
  print(f"{count} images of {_CATALOG.value}, patch size {config.patch_size}")
  print(f"crop-box IoU: min {ious.min():.4f}, mean {ious.mean():.4f}, "
        f">= 0.98 on {np.mean(ious >= 0.98):.1%} of images")
  for index in np.flatnonzero(ious < 0.98):
    print(f"  image {index}: IoU {ious[index]:.4f}")
  print(f"foreground found differently on {len(found_differs)} images {found_differs[:20]}")
  print(f"patch pixels: largest difference {max(pixel_differences)} (median over images "
        f"{int(np.median(pixel_differences))}, identical on "
        f"{np.mean(np.asarray(pixel_differences) == 0):.1%} of images)")
  print(f"in-graph preprocessing: {seconds / count * 1000:.1f} ms per image")


if __name__ == "__main__":
  app.run(main)
