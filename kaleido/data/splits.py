"""Splitting a catalog by product: every view of a product lands on the same side."""

from __future__ import annotations

import dataclasses
import zlib


def in_holdout(product_id: str, fraction: float, seed: int) -> bool:
  """Whether `product_id` is in the held-out `fraction` of products, deterministically from
  `seed` (a CRC-32 of seed and id, so no list of products is needed)."""
  return zlib.crc32(f"{seed}:{product_id}".encode()) % 10000 < fraction * 10000


@dataclasses.dataclass(frozen=True)
class ProductSplit:
  """Which side of a split by product to keep: the held-out `fraction` (`holdout`) or the rest."""
  fraction: float
  seed: int = 0
  holdout: bool = False

  def keeps(self, product_id: str) -> bool:
    return in_holdout(product_id, self.fraction, self.seed) == self.holdout
