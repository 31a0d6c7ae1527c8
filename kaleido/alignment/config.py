"""Settings of the alignment generator: the captioner's architecture, its training and how
attention maps become alignment pairs. Library code takes these objects, never flags."""

from __future__ import annotations

import dataclasses

from kaleido import errors

BACKBONES = ("small", "resnet50")
# Pixels of the input per attention cell: the small backbone has four stride-2 convolutions,
# ResNet-50's last block (conv5) is at stride 32 (224 px -> 7 x 7, 448 px -> 14 x 14).
BACKBONE_STRIDES = {"small": 16, "resnet50": 32}
DECODINGS = ("greedy", "beam")


class AlignmentError(errors.KaleidoError):
  """Bad settings, data or checkpoints of the alignment generator."""


@dataclasses.dataclass(frozen=True)
class CaptionerConfig:
  """Architecture of the Show-Attend-Tell captioner and the vocabulary it speaks.

  Token ids are those of the prepared TFRecords: [CLS] starts a caption, [SEP] ends it.
  """
  vocab_size: int
  vocab_hash: str
  cls_id: int
  sep_id: int
  pad_id: int
  backbone: str = "small"
  image_size: int = 128  # side of the square product crop the captioner sees
  feature_size: int = 256  # annotation vectors: projected backbone features
  embedding_size: int = 128
  hidden_size: int = 256  # LSTM units
  attention_size: int = 128
  dropout: float = 0.3
  max_length: int = 64  # tokens of a caption including [CLS] and [SEP]

  def __post_init__(self):
    if self.backbone not in BACKBONES:
      raise AlignmentError(f"Unknown captioner backbone {self.backbone!r}; use one of "
                           f"{', '.join(BACKBONES)}.")
    stride = BACKBONE_STRIDES[self.backbone]
    if self.image_size % stride or self.image_size < 2 * stride:
      raise AlignmentError(
          f"image_size {self.image_size} does not suit the {self.backbone} backbone; use a "
          f"multiple of {stride} of at least {2 * stride}.")
    sizes = (self.feature_size, self.embedding_size, self.hidden_size, self.attention_size,
             self.vocab_size)
    if min(sizes) < 1 or self.max_length < 3:
      raise AlignmentError(f"Captioner sizes must be positive and max_length >= 3, got {self}.")
    if not 0.0 <= self.dropout < 1.0:
      raise AlignmentError(f"Captioner dropout {self.dropout} must be in [0, 1).")

  @property
  def grid_size(self) -> int:
    """Attention cells per side of the crop."""
    return self.image_size // BACKBONE_STRIDES[self.backbone]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """How the captioner is trained (teacher forcing, Adam, SAT's attention regulariser)."""
  train_data: str  # a folder written by data/prepare.py
  output_dir: str
  validation_data: str = ""  # optional prepared folder for held-out loss and pictures
  steps: int = 3000
  batch_size: int = 32
  learning_rate: float = 1e-3
  attention_reg: float = 1.0  # lambda of the doubly stochastic regulariser
  word_dropout: float = 0.0  # share of teacher-forced input words replaced by [PAD]
  clip_norm: float = 5.0
  flip: bool = True  # random horizontal flips of the crops
  backbone_weights: str = ""  # Keras .h5 weights of the backbone
  backbone_trainable: bool = True
  checkpoint_every: int = 500
  log_every: int = 50
  picture_every: int = 500
  max_checkpoints: int = 3
  resume: bool = True
  seed: int = 0

  def __post_init__(self):
    if min(self.steps, self.batch_size, self.checkpoint_every, self.log_every,
           self.picture_every, self.max_checkpoints) < 1:
      raise AlignmentError("steps, batch_size, checkpoint_every, log_every, picture_every and "
                           "max_checkpoints must all be at least 1.")
    if self.learning_rate <= 0 or self.attention_reg < 0 or self.clip_norm <= 0:
      raise AlignmentError("learning_rate and clip_norm must be > 0 and attention_reg >= 0.")
    if not 0.0 <= self.word_dropout < 1.0:
      raise AlignmentError(f"word_dropout {self.word_dropout} must be in [0, 1).")


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
