"""Foreground estimation for the Kaleido Patch Generator (paper section 3.2, first step).

Estimators share one interface, `ForegroundEstimator.masks(images) -> bool masks`:
- `ClassicalForeground` (default): for studio photos. Background colour from the image border,
  colour-distance threshold, morphology, largest connected component. No TensorFlow, so it runs in
  data-preparation worker processes at hundreds of images per second.
- `UNetForeground` (paper footnote 4), in `kaleido.patches.unet_foreground`, selected by config.
- `WholeImage` (`none`): every pixel is foreground, so the patches are cut from the whole image
  (the paper's Table 4 ablation without the saliency crop).
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import cv2
import numpy as np

FOREGROUND_METHODS = ("classical", "unet", "none")


@dataclasses.dataclass(frozen=True)
class ForegroundConfig:
  """How to find the product in an image."""
  method: str = "classical"
  unet_checkpoint: str = ""  # required when method == "unet"
  # Classical estimator: a pixel is foreground when its colour is farther than this (0..441 in
  # RGB units) from the background colour estimated on the border.
  distance_threshold: float = 40.0
  border_width: int = 4
  morphology_kernel: int = 5
  # A mask covering less than this fraction of the image counts as "no foreground".
  min_area_fraction: float = 0.005


WORKING_SIZE = 1024  # ClassicalForeground judges larger images at this longest side


class ForegroundEstimator(Protocol):
  """Produces a boolean foreground mask per image."""

  def masks(self, images: np.ndarray) -> np.ndarray:
    """(B, H, W, 3) uint8 RGB -> (B, H, W) bool."""
    ...


class ClassicalForeground:
  """Border-colour background subtraction for light studio backgrounds."""

  def __init__(self, config: ForegroundConfig = ForegroundConfig()):
    self._config = config
    size = config.morphology_kernel
    self._kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))

  def mask(self, image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W) bool mask of the largest foreground component. An image larger
    than WORKING_SIZE on a side is judged at that size (the border width and the kernel are set
    for product photos of a few hundred pixels; memory is ~50 bytes per pixel judged)."""
    height, width = image.shape[:2]
    scale = WORKING_SIZE / max(height, width)
    if scale >= 1.0:
      return self._mask(image)
    small = cv2.resize(image, (max(1, round(width * scale)), max(1, round(height * scale))),
                       interpolation=cv2.INTER_AREA)
    mask = self._mask(small).astype(np.uint8)
    return cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST).astype(bool)

  def _mask(self, image: np.ndarray) -> np.ndarray:
    width = self._config.border_width
    pixels = image.astype(np.float32)
    border = np.concatenate([
        pixels[:width].reshape(-1, 3), pixels[-width:].reshape(-1, 3),
        pixels[:, :width].reshape(-1, 3), pixels[:, -width:].reshape(-1, 3)])
    background = np.median(border, axis=0)
    distance = np.sqrt(np.sum(np.square(pixels - background), axis=-1))
    raw = (distance > self._config.distance_threshold).astype(np.uint8)
    cleaned = cv2.morphologyEx(raw, cv2.MORPH_OPEN, self._kernel)
    cleaned = cv2.morphologyEx(cleaned, cv2.MORPH_CLOSE, self._kernel)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(cleaned, connectivity=8)
    if count <= 1:
      return np.zeros(image.shape[:2], dtype=bool)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    component = labels == largest
    # Fill holes (e.g. a white logo inside a dark garment) so the box is not split.
    filled = component.astype(np.uint8)
    contours, _ = cv2.findContours(filled, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    return filled.astype(bool)

  def masks(self, images: np.ndarray) -> np.ndarray:
    return np.stack([self.mask(image) for image in images]) if len(images) else np.zeros(
        (0,) + tuple(images.shape[1:3]), dtype=bool)


class WholeImage:
  """No foreground detection: the whole image is the product."""

  def masks(self, images: np.ndarray) -> np.ndarray:
    return np.ones(images.shape[:3], dtype=bool)


def foreground_box(mask: np.ndarray, min_area_fraction: float) -> tuple[tuple[int, int, int, int],
                                                                         bool]:
  """Tight [x1, y1, x2, y2) pixel box of `mask`, and whether a foreground was found.

  With too little foreground the box is the whole image (the paper's fallback) and found=False.
  """
  height, width = mask.shape
  ys, xs = np.nonzero(mask)
  if ys.size < min_area_fraction * height * width:
    return (0, 0, width, height), False
  return (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1), True


def build_estimator(config: ForegroundConfig) -> ForegroundEstimator:
  """The estimator named by `config.method`."""
  if config.method == "classical":
    return ClassicalForeground(config)
  if config.method == "none":
    return WholeImage()
  if config.method == "unet":
    from kaleido.patches import unet_foreground  # pylint: disable=g-import-not-at-top
    return unet_foreground.UNetForeground.from_checkpoint(config.unet_checkpoint)
  raise ValueError(f"Unknown foreground method {config.method!r}; use one of "
                   f"{FOREGROUND_METHODS}.")
