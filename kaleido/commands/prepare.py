r"""Turns a catalog (Fashion-Gen .h5 or .jsonl) into sharded TFRecords with kaleido patches.

  python data/prepare.py --input catalog.h5 --output_dir prepared/train [--vocab_file vocab.txt]

Without --vocab_file a WordPiece vocabulary is learned from the catalog's texts and written to
OUTPUT_DIR/vocab.txt; with --label_maps_from (a prepared training folder, for validation splits)
that folder's vocabulary and category ids are reused. Interrupted runs resume where they stopped.

With --holdout_fraction (and --holdout_dir) a fraction of the products, all views of each, goes
to a development folder for tuning instead (same vocabulary and label ids; split by product id,
deterministic by --holdout_seed).

Bad rows are skipped and counted by reason in the manifest (the good ones are all written); a
product whose rows disagree on its labels keeps its first row's (`conflicting_labels`). The
shards are byte-reproducible and the manifest lists each one's size and SHA-256:
`--verify --output_dir FOLDER` checks a prepared folder against them.

With --aag_checkpoint (an alignment generator trained by data/train_aag.py on data of the same
vocabulary) the (token, patch) pairs are written too, as data/add_alignments.py would add them to
an existing folder; the pair settings (--decoding, --min_score, ...) are the same flags.
"""

import dataclasses
import os
import sys

from absl import flags

from kaleido import config_flags
from kaleido import errors
from kaleido.alignment import flags as align_flags
from kaleido.data import catalogs
from kaleido.data import splits
from kaleido.records import beam_flags
from kaleido.records import prepare_config
from kaleido.utils import cli

_INPUT = flags.DEFINE_string("input", None, "Catalog: a Fashion-Gen .h5 file or a .jsonl file.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Folder for the TFRecord shards.")
_VOCAB_FILE = flags.DEFINE_string(
    "vocab_file", None, "WordPiece vocabulary (one token per line, e.g. bert-base-uncased "
    "vocab.txt). Default: the --label_maps_from folder's, else one learned from the catalog.")
_VOCAB_SIZE = flags.DEFINE_integer("vocab_size", 8000, "Size of a vocabulary learned here.")
_VOCAB_SAMPLE_SIZE = flags.DEFINE_integer(
    "vocab_sample_size", 1_000_000, "A vocabulary learned here reads at most this many texts, "
    "drawn at random (seeded by --vocab_sample_seed) from a larger catalog; 0: every text.",
    lower_bound=0)
_VOCAB_SAMPLE_SEED = flags.DEFINE_integer("vocab_sample_seed", 0,
                                          "Seed of the --vocab_sample_size draw.")
_VERIFY = flags.DEFINE_bool(
    "verify", False, "Only check the prepared --output_dir: every shard's size and SHA-256 "
    "against its manifest.")
_HOLDOUT_FRACTION = flags.DEFINE_float(
    "holdout_fraction", 0.0, "Hold out this fraction of the products (all views of each) as a "
    "development split for tuning, written to --holdout_dir with the same vocabulary and label "
    "ids; 0: none.", lower_bound=0.0, upper_bound=0.9)
_HOLDOUT_DIR = flags.DEFINE_string("holdout_dir", "", "Output folder of the held-out products.")
_HOLDOUT_SEED = flags.DEFINE_integer("holdout_seed", 0, "Seed of the split by product.")
_AAG_CHECKPOINT = flags.DEFINE_string(
    "aag_checkpoint", "", "Output directory of data/train_aag.py: also write its alignment pairs.")
_ALIGN_BATCH_SIZE = flags.DEFINE_integer("align_batch_size", 64,
                                         "Crops captioned at once for --aag_checkpoint.")
config_flags.define(prepare_config.SETTINGS, prepare_config.DEFAULTS)
align_flags.define_align_flags()
flags.adopt_module_key_flags(align_flags)
beam_flags.define_runner_flags()


def _vocab_file(config: prepare_config.PrepareConfig) -> str:
  """The vocabulary to use: given, inherited from --label_maps_from, or learned now."""
  from kaleido.records import manifest as manifest_lib  # pylint: disable=g-import-not-at-top
  from kaleido.text import vocab  # pylint: disable=g-import-not-at-top
  if _VOCAB_FILE.value:
    return _VOCAB_FILE.value
  if config.label_maps_from:
    return manifest_lib.load(config.label_maps_from).vocab_file
  path = os.path.join(config.output_dir, "vocab.txt")
  if not os.path.exists(path):
    print(f"Learning a {_VOCAB_SIZE.value}-token WordPiece vocabulary from {_INPUT.value} ...",
          file=sys.stderr)
    vocab.write_vocab(path, vocab.learn_vocab(
        vocab.catalog_texts(_INPUT.value, config.text_field, config.text_encoding,
                            _VOCAB_SAMPLE_SIZE.value, _VOCAB_SAMPLE_SEED.value),
        _VOCAB_SIZE.value))
  return path


def _check_aag_checkpoint(vocab_file: str, patch_size: int) -> None:
  """Refuses, before any image is cut, a generator that cannot align this data."""
  from kaleido.alignment import captioner_dir  # pylint: disable=g-import-not-at-top
  from kaleido.utils import files  # pylint: disable=g-import-not-at-top
  directory = _AAG_CHECKPOINT.value
  captioner_dir.check_matches_data(captioner_dir.read_config(directory), directory,
                                files.file_sha256(vocab_file), patch_size,
                                _OUTPUT_DIR.value)
  captioner_dir.latest_checkpoint(directory)


def _check_inputs(text_encoding: str) -> None:
  """One sentence for inputs that cannot work, before any folder is created."""
  catalogs.open_catalog(_INPUT.value, text_encoding).close()
  if _HOLDOUT_FRACTION.value and not _HOLDOUT_DIR.value:
    raise errors.KaleidoError("--holdout_fraction needs --holdout_dir, the folder the held-out "
                              "products are written to.")
  for flag, folder in (("output_dir", _OUTPUT_DIR.value), ("holdout_dir", _HOLDOUT_DIR.value)):
    if folder and os.path.isfile(folder):
      raise errors.KaleidoError(f"--{flag}={folder!r} is a file; pass a folder (it is created "
                                "if missing).")
  if _VOCAB_FILE.value:
    from kaleido.text import vocab  # pylint: disable=g-import-not-at-top
    vocab.read_vocab(_VOCAB_FILE.value)
  beam_flags.beam_runner()  # one sentence now when Beam is asked for but missing


def _verify(folder: str) -> None:
  from kaleido.records import manifest as manifest_lib  # pylint: disable=g-import-not-at-top
  manifest = manifest_lib.load(folder)
  manifest_lib.check_shards(folder, manifest, sha256=True)
  print(f"{folder}: all {len(manifest.shards)} shards match their manifest's sizes and SHA-256.")


@cli.user_errors_as_messages
def main(argv):
  del argv
  if _VERIFY.value:
    _verify(_OUTPUT_DIR.value)
    return
  config = dataclasses.replace(
      config_flags.parse(prepare_config.SETTINGS, prepare_config.DEFAULTS),
      input_path=_INPUT.value, output_dir=_OUTPUT_DIR.value)
  _check_inputs(config.text_encoding)
  align_config = align_flags.align_config()
  # TensorFlow is imported here, not at the top: spawned workers re-import this script.
  from kaleido.records import prepare  # pylint: disable=g-import-not-at-top
  os.makedirs(config.output_dir, exist_ok=True)
  config = dataclasses.replace(config, vocab_file=_vocab_file(config))
  if _AAG_CHECKPOINT.value:
    _check_aag_checkpoint(config.vocab_file, config.patch.patch_size)
  outputs = [config]
  if _HOLDOUT_FRACTION.value:
    outputs = [
        dataclasses.replace(config, split=splits.ProductSplit(_HOLDOUT_FRACTION.value,
                                                             _HOLDOUT_SEED.value, False)),
        dataclasses.replace(config, output_dir=_HOLDOUT_DIR.value, split=splits.ProductSplit(
            _HOLDOUT_FRACTION.value, _HOLDOUT_SEED.value, True),
                            label_maps_from=config.label_maps_from or _OUTPUT_DIR.value)]
  beam = beam_flags.beam_runner()
  for output in outputs:
    if beam:
      from kaleido.records import beam_prepare  # pylint: disable=g-import-not-at-top
      manifest = beam_prepare.prepare_catalog(output, *beam)
    else:
      manifest = prepare.prepare_catalog(output)
    _report(manifest, output.output_dir)
    if _AAG_CHECKPOINT.value and beam:
      from kaleido.alignment import beam_writer  # pylint: disable=g-import-not-at-top
      manifest = beam_writer.add_alignments(output.output_dir, _AAG_CHECKPOINT.value,
                                            align_config, _ALIGN_BATCH_SIZE.value, *beam,
                                            workers=output.workers)
    elif _AAG_CHECKPOINT.value:
      from kaleido.alignment import writer  # pylint: disable=g-import-not-at-top
      manifest = writer.add_alignments(output.output_dir, _AAG_CHECKPOINT.value, align_config,
                                       _ALIGN_BATCH_SIZE.value)
    if _AAG_CHECKPOINT.value:
      print(f"Alignment pairs: {manifest.num_with_alignments} of {manifest.num_examples} "
            f"examples have pairs ({manifest.num_alignment_pairs} pairs), "
            f"{manifest.num_without_alignments} got none.")


def _report(manifest, output_dir: str) -> None:
  from kaleido.records import catalog_scan  # pylint: disable=g-import-not-at-top
  reasons = ", ".join(f"{k}: {v}" for k, v in manifest.skipped_reasons.items())
  held = (f"; {manifest.num_other_split} rows of the other side of the split by product"
          if manifest.num_other_split else "")
  print(f"Wrote {manifest.num_examples} examples of {manifest.num_products} products in "
        f"{len(manifest.shards)} shards to {output_dir}; skipped {manifest.num_skipped}"
        f"{f' ({reasons})' if reasons else ''}; no foreground found (whole image used): "
        f"{manifest.num_foreground_fallback}; texts truncated: {manifest.num_truncated}{held}.")
  conflicting = manifest.skipped_reasons.get(catalog_scan.CONFLICTING_LABELS)
  if conflicting:
    print(f"Note: {conflicting} rows gave their product other labels than its first row; each "
          "product kept its first row's labels and those rows were skipped "
          f"({catalog_scan.CONFLICTING_LABELS}).", file=sys.stderr)


def run() -> None:
  """The `kaleido-prepare` command."""
  flags.mark_flags_as_required(["output_dir"])
  flags.register_multi_flags_validator(
      ["input", "verify"], lambda values: bool(values["input"]) or values["verify"],
      "--input is required: a Fashion-Gen .h5 or a .jsonl catalog.")
  cli.run(main)


if __name__ == "__main__":
  run()
