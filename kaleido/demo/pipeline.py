"""The embedded demo data set: synthetic catalogs -> vocabulary -> prepared folders of three splits.

`train` is for training, `development` for every tuning decision (learning rates, levers,
checkpoints), `validation` for the reported numbers only; no product is in two splits.

Every step is skipped when its output already exists, so calling `ensure_demo_data` again (or
after an interruption) only does what is missing.
"""

from __future__ import annotations

import dataclasses
import os

from kaleido.demo import generator as demo_generator
from kaleido.patches import generator
from kaleido.records import manifest as manifest_lib
from kaleido.records import prepare
from kaleido.records import prepare_config
from kaleido.text import vocab
from kaleido.utils import files


SPLITS = ("train", "validation", "development")


@dataclasses.dataclass(frozen=True)
class DemoConfig:
  """Sizes of the demo data set."""
  work_dir: str = "workdir/demo"
  num_train_products: int = 600
  num_validation_products: int = 150
  num_development_products: int = 150
  seed: int = 0
  patch_size: int = 64
  vocab_size: int = 4000
  workers: int = 2
  # A given vocabulary (e.g. a pretrained BERT's) instead of one learned from the demo texts; the
  # data prepared with it lives in its own folders beside the default ones.
  vocab_file: str = ""


@dataclasses.dataclass(frozen=True)
class DemoData:
  """Where the demo data set lives."""
  train_catalog: str
  validation_catalog: str
  development_catalog: str
  vocab_file: str
  train_dir: str
  validation_dir: str
  development_dir: str

  def split_dir(self, split: str) -> str:
    """The prepared folder of `split` (one of SPLITS)."""
    if split not in SPLITS:
      raise ValueError(f"Unknown demo split {split!r}; use one of {', '.join(SPLITS)}.")
    return getattr(self, f"{split}_dir")


def _same_vocabulary(vocab_file: str, own: str) -> bool:
  """Whether `vocab_file` is the demo's own learned vocabulary `own` (the same file, or a copy
  or link of it elsewhere)."""
  if os.path.realpath(vocab_file) == os.path.realpath(own):
    return True
  return os.path.exists(own) and files.file_sha256(vocab_file) == files.file_sha256(own)


def demo_paths(work_dir: str, vocab_file: str = "") -> DemoData:
  """Where the demo lives; with a `vocab_file` other than the demo's own, prepared folders named
  after its hash."""
  own = os.path.join(work_dir, "vocab.txt")
  prepared = "prepared"
  if vocab_file and not _same_vocabulary(vocab_file, own):
    prepared = f"prepared-vocab-{files.file_sha256(vocab_file)[:12]}"
  else:
    vocab_file = own
  return DemoData(
      train_catalog=os.path.join(work_dir, "catalog", "train.h5"),
      validation_catalog=os.path.join(work_dir, "catalog", "validation.h5"),
      development_catalog=os.path.join(work_dir, "catalog", "development.h5"),
      vocab_file=vocab_file,
      train_dir=os.path.join(work_dir, prepared, "train"),
      validation_dir=os.path.join(work_dir, prepared, "validation"),
      development_dir=os.path.join(work_dir, prepared, "development"))


def _is_prepared(folder: str) -> bool:
  """Whether `folder` is a finished preparation holding the product names (schema 2)."""
  try:
    return manifest_lib.load(folder).num_with_name > 0
  except manifest_lib.ManifestError:
    return False


def ensure_demo_data(config: DemoConfig, log=print) -> DemoData:
  """Generates and prepares whatever part of the demo data set is missing; says where it is."""
  paths = demo_paths(config.work_dir, config.vocab_file)
  log(f"The demo data set is in {os.path.abspath(config.work_dir)}; missing parts are built "
      "there.")
  first_development = config.num_train_products + config.num_validation_products
  splits = ((paths.train_catalog, 0, config.num_train_products),
            (paths.validation_catalog, config.num_train_products,
             config.num_validation_products),
            (paths.development_catalog, first_development, config.num_development_products))
  for catalog_path, first, count in splits:
    if not os.path.exists(catalog_path):
      summary = demo_generator.make_demo_catalog(catalog_path, count, config.seed,
                                                 first_product=first)
      log(f"Generated {summary.num_images} images of {count} products: {catalog_path}")
  if not os.path.exists(paths.vocab_file):
    vocab.write_vocab(paths.vocab_file, vocab.learn_vocab(
        vocab.catalog_texts(paths.train_catalog, "description"), config.vocab_size))
    log(f"Learned a WordPiece vocabulary: {paths.vocab_file}")
  for catalog_path, folder, label_maps_from in (
      (paths.train_catalog, paths.train_dir, ""),
      (paths.validation_catalog, paths.validation_dir, paths.train_dir),
      (paths.development_catalog, paths.development_dir, paths.train_dir)):
    if not _is_prepared(folder):
      manifest = prepare.prepare_catalog(prepare_config.PrepareConfig(
          input_path=catalog_path, output_dir=folder, vocab_file=paths.vocab_file,
          patch=generator.PatchConfig(patch_size=config.patch_size), workers=config.workers,
          label_maps_from=label_maps_from, overwrite=os.path.exists(
              os.path.join(folder, manifest_lib.MANIFEST_NAME))))
      log(f"Prepared {manifest.num_examples} examples ({manifest.num_skipped} skipped, "
          f"{manifest.num_foreground_fallback} without foreground): {folder}")
  return paths
