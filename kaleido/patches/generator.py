"""Kaleido Patch Generator (paper section 3.2): image -> product crop from which the 55 patches come.

The generator finds the foreground, boxes the product (squared, with a margin), and stores the
crop once as a JPEG together with its box. The 55 patches are cut from that crop by the tf.data
reader, which keeps the files about 5x smaller than 55 separately encoded patches (figures in
BUILD_NOTES.md). This module uses no TensorFlow so it runs in preparation worker processes.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from kaleido.patches import foreground
from kaleido.patches import kaleido_grid


@dataclasses.dataclass(frozen=True)
class PatchConfig:
  """How products are cropped and stored."""
  patch_size: int = 64
  crop_margin: float = 0.04  # grows the product box by this fraction of its side on each side
  jpeg_quality: int = 95
  foreground: foreground.ForegroundConfig = foreground.ForegroundConfig()

  @property
  def max_crop_side(self) -> int:
    """Largest stored crop side: the L5 grid needs 5 patch sizes, more pixels are never read."""
    return kaleido_grid.LEVELS[-1] * self.patch_size


@dataclasses.dataclass(frozen=True)
class KaleidoCrop:
  """The stored form of one image's kaleido patches."""
  crop_jpeg: bytes
  crop_box: np.ndarray  # (4,) float32 [x1, y1, x2, y2] normalised to the full image
  foreground_found: bool
  image_height: int
  image_width: int


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
  """RGB uint8 image -> JPEG bytes."""
  ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                             [cv2.IMWRITE_JPEG_QUALITY, quality])
  if not ok:
    raise ValueError(f"JPEG encoding failed for an image of shape {image.shape}.")
  return encoded.tobytes()


class KaleidoPatchGenerator:
  """Turns product images into `KaleidoCrop`s."""

  def __init__(self, config: PatchConfig = PatchConfig()):
    self._config = config
    self._estimator = foreground.build_estimator(config.foreground)

  def crop_box(self, mask: np.ndarray) -> tuple[tuple[int, int, int, int], bool]:
    """Square pixel crop box `[x1, y1, x2, y2)` around the mask's product, and whether one was
    found (if not, the whole image)."""
    height, width = mask.shape
    box, found = foreground.foreground_box(mask, self._config.foreground.min_area_fraction)
    if not found:
      return box, False
    return kaleido_grid.square_crop_box(box, width, height, self._config.crop_margin), True

  def _crop(self, image: np.ndarray, mask: np.ndarray) -> KaleidoCrop:
    height, width = image.shape[:2]
    (x1, y1, x2, y2), found = self.crop_box(mask)
    crop = image[y1:y2, x1:x2]
    longest = max(crop.shape[:2])
    if longest > self._config.max_crop_side:
      scale = self._config.max_crop_side / longest
      size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
      crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
    return KaleidoCrop(
        crop_jpeg=encode_jpeg(np.ascontiguousarray(crop), self._config.jpeg_quality),
        crop_box=np.array([x1 / width, y1 / height, x2 / width, y2 / height], np.float32),
        foreground_found=found,
        image_height=height,
        image_width=width)

  def crops(self, images: list[np.ndarray]) -> list[KaleidoCrop]:
    """One crop per (H, W, 3) uint8 RGB image; images of equal size are masked as a batch."""
    masks: list[np.ndarray | None] = [None] * len(images)
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, image in enumerate(images):
      by_shape.setdefault(image.shape, []).append(i)
    for indices in by_shape.values():
      batch_masks = self._estimator.masks(np.stack([images[i] for i in indices]))
      for i, mask in zip(indices, batch_masks):
        masks[i] = mask
    return [self._crop(image, mask) for image, mask in zip(images, masks)]
