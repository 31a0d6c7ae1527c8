"""Foreground quality against ground-truth boxes (demo catalog), shared by tests and benchmarks."""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from kaleido.data import catalog as catalog_lib
from kaleido.demo import groundtruth
from kaleido.patches import foreground


@dataclasses.dataclass(frozen=True)
class BoxQuality:
  num_images: int
  share_above: float  # share of images with IoU >= threshold
  mean_iou: float
  min_iou: float
  num_fallbacks: int  # images where no foreground was found


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
  """IoU of two `[x1, y1, x2, y2)` boxes."""
  inter_w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
  inter_h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
  intersection = inter_w * inter_h
  union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - intersection
  return intersection / union if union > 0 else 0.0


def box_quality(estimator: foreground.ForegroundEstimator,
                rows: Sequence[catalog_lib.CatalogRow],
                truths: Sequence[groundtruth.ImageTruth], min_area_fraction: float,
                threshold: float = 0.9, batch_size: int = 32) -> BoxQuality:
  """Tight foreground boxes of `estimator` against the true boxes of the same rows."""
  truth_of = {t.row: t for t in truths}
  ious, fallbacks = [], 0
  for start in range(0, len(rows), batch_size):
    batch = rows[start:start + batch_size]
    masks = estimator.masks(np.stack([row.image for row in batch]))
    for row, mask in zip(batch, masks):
      box, found = foreground.foreground_box(mask, min_area_fraction)
      fallbacks += int(not found)
      ious.append(box_iou(box, truth_of[row.index].foreground_box))
  ious = np.asarray(ious)
  return BoxQuality(num_images=len(ious), share_above=float(np.mean(ious >= threshold)),
                    mean_iou=float(ious.mean()), min_iou=float(ious.min()),
                    num_fallbacks=fallbacks)
