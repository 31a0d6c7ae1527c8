"""What data/prepare.py is asked to do (kaleido.records.prepare carries it out): one
PrepareConfig, and the flags of the settings it shares with the command line, derived from it
(kaleido.config_flags: one default per setting). Imports no TensorFlow: the preparation's
worker processes read it.
"""

from __future__ import annotations

import dataclasses

from kaleido import config_flags
from kaleido.data import catalog as catalog_lib
from kaleido.data import splits
from kaleido.patches import foreground
from kaleido.patches import generator

TEXT_ENCODINGS = ("auto", "latin-1", "utf-8")


@dataclasses.dataclass(frozen=True)
class PrepareConfig:
  """Everything `prepare_catalog` needs."""
  input_path: str
  output_dir: str
  vocab_file: str
  patch: generator.PatchConfig = generator.PatchConfig()
  max_seq_length: int = 64
  text_field: str = "description"
  num_shards: int = 0  # 0: one shard per `rows_per_shard` rows
  rows_per_shard: int = 2048
  workers: int = 2  # 0: process in the main process
  chunk_rows: int = 32
  label_maps_from: str = ""  # a prepared folder whose category ids to reuse (validation splits)
  split: splits.ProductSplit | None = None  # keep one side of a split by product
  text_encoding: str = "auto"  # of a Fashion-Gen file: auto, latin-1 or utf-8
  overwrite: bool = False


# The defaults of the settings the command line sets (the paths come from their own flags).
DEFAULTS = PrepareConfig(input_path="", output_dir="", vocab_file="")

_S = config_flags.Setting
SETTINGS = (
    _S("patch_size", ("patch.patch_size",), "Side of each kaleido patch in pixels."),
    _S("crop_margin", ("patch.crop_margin",), "Margin around the product box."),
    _S("foreground", ("patch.foreground.method",), "Foreground estimator of the patch "
       "generator.", choices=foreground.FOREGROUND_METHODS),
    _S("unet_checkpoint", ("patch.foreground.unet_checkpoint",), "Checkpoint folder of "
       "data/train_foreground.py (--foreground=unet)."),
    _S("max_seq_length", ("max_seq_length",), "Tokens per text incl. [CLS]/[SEP]."),
    _S("text_field", ("text_field",), "Which product text the model reads.",
       choices=catalog_lib.TEXT_FIELDS),
    _S("num_shards", ("num_shards",), "Output shards (0: one per 2,048 images)."),
    _S("workers", ("workers",), "Image worker processes (0: in this process); with "
       "--runner=DirectRunner, its number of workers."),
    _S("label_maps_from", ("label_maps_from",), "A prepared folder whose category ids and "
       "vocabulary to reuse."),
    _S("text_encoding", ("text_encoding",), "Text encoding of a Fashion-Gen file: the original "
       "files are latin-1, some re-exports UTF-8; auto takes UTF-8 when every sampled text "
       "decodes as UTF-8 and some hold multi-byte characters, else latin-1.",
       choices=TEXT_ENCODINGS),
    _S("overwrite", ("overwrite",), "Replace an output folder prepared with other settings."),
)
