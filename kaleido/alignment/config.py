"""Settings of the alignment generator: how attention maps become alignment pairs. The captioner's
architecture and training are part of the experiment config (kaleido.config.CaptionerConfig).
Library code takes these objects, never flags."""

from __future__ import annotations

import dataclasses

from kaleido import errors

DECODINGS = ("greedy", "beam")


class AlignmentError(errors.KaleidoError):
  """Bad settings, data or checkpoints of the alignment generator."""


@dataclasses.dataclass(frozen=True)
class AlignConfig:
  """How captions and attention maps become (token, patch, score) pairs (see pairs.py)."""
  decoding: str = "greedy"
  beam_size: int = 3
  mass_fraction: float = 0.5  # the region kept holds this share of a word's attention
  max_region_area: float = 0.25  # words attending more of the crop than this get no pairs
  min_score: float = 0.5  # Dice overlap of region and patch
  max_patches_per_level: int = 1  # per word, the patches holding the most attention
  raster_size: int = 60  # crop raster the geometry is computed on (divisible by 3, 4, 5)
  min_word_length: int = 2

  def __post_init__(self):
    if self.decoding not in DECODINGS:
      raise AlignmentError(f"Unknown decoding {self.decoding!r}; use one of "
                           f"{', '.join(DECODINGS)}.")
    if self.beam_size < 1 or self.max_patches_per_level < 1:
      raise AlignmentError(f"beam_size {self.beam_size} and max_patches_per_level "
                           f"{self.max_patches_per_level} must be at least 1.")
    if not (0.0 < self.mass_fraction <= 1.0 and 0.0 < self.max_region_area <= 1.0 and
            0.0 < self.min_score <= 1.0):
      raise AlignmentError("mass_fraction, max_region_area and min_score must be in (0, 1].")
    if self.raster_size < 60 or self.raster_size % 60:
      raise AlignmentError(f"raster_size {self.raster_size} must be a positive multiple of 60, "
                           "so every L3, L4 and L5 patch covers whole raster cells.")
