"""The Attention-based Alignment Generator: caption a crop, then turn attention into pairs."""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from kaleido import config as config_lib
from kaleido.alignment import captioner as captioner_lib
from kaleido.alignment import captioner_dir
from kaleido.alignment import config as align_config
from kaleido.alignment import decoding
from kaleido.alignment import pairs
from kaleido.records import manifest as manifest_lib


@dataclasses.dataclass(frozen=True)
class ExampleResult:
  """The generated caption of one example and the pairs drawn from it."""
  caption: decoding.Caption
  caption_tokens: list[str]
  text_tokens: list[str]
  alignment: pairs.ExampleAlignment


class AlignmentGenerator:
  """Captions batches of crops and aligns each caption with the product's own text."""

  def __init__(self, captioner: captioner_lib.Captioner, vocab_tokens: list[str],
               config: align_config.AlignConfig = align_config.AlignConfig()):
    self.captioner = captioner
    self.config = config
    self._tokens = vocab_tokens
    self._decoder = decoding.CaptionDecoder(captioner, vocab_tokens)

  @classmethod
  def from_checkpoint(cls, directory: str, config: align_config.AlignConfig,
                      manifest: manifest_lib.Manifest | None = None,
                      folder: str = "") -> AlignmentGenerator:
    """Loads a trained generator; with `manifest`, refuses one that does not suit that data."""
    captioner_config = captioner_dir.read_config(directory)
    if manifest is not None:
      captioner_dir.check_matches_data(captioner_config, directory, manifest.vocab_hash,
                                    manifest.patch_size, folder)
    return cls(captioner_dir.load_captioner(directory), captioner_dir.vocab_tokens(directory),
               config)

  @property
  def captioner_config(self) -> config_lib.CaptionerConfig:
    return self.captioner.config

  def tokens(self, ids: Sequence[int]) -> list[str]:
    """Token strings of ids."""
    return [self._tokens[int(i)] for i in ids]

  def captions(self, images: np.ndarray) -> list[decoding.Caption]:
    """Captions of (B, S, S, 3) uint8 crops with the configured decoding."""
    if self.config.decoding == "beam":
      return self._decoder.beam_search(images, self.config.beam_size)
    return self._decoder.greedy(images)

  def align(self, images: np.ndarray,
            token_ids: Sequence[Sequence[int]]) -> list[ExampleResult]:
    """Captions and pairs of a batch: crops (B, S, S, 3) uint8 and each product's token ids."""
    results = []
    for caption, ids in zip(self.captions(images), token_ids):
      caption_tokens = self.tokens(caption.token_ids)
      text_tokens = self.tokens(ids)
      alignment = pairs.align_caption(text_tokens, caption_tokens, caption.attention,
                                      self.config)
      results.append(ExampleResult(caption, caption_tokens, text_tokens, alignment))
    return results
