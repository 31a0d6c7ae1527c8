"""The alignment generator's captioner directory (the `--output_dir` of data/train_aag.py):

- `run_config.json`: the experiment config of its training (kaleido.config), whose model is the
  captioner's `CaptionerConfig`: the architecture, the vocabulary's SHA-256 and size, the
  special token ids and the image size.
- `vocab.txt`: a copy of the vocabulary the captioner speaks (the prepared data's).
- `checkpoints/`: the trainer's checkpoints of the model, optimizer and step.
- `train/`: TensorBoard summaries.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil

from kaleido import config as config_lib
from kaleido.alignment import captioner as captioner_lib
from kaleido.alignment import config as align_config
from kaleido.patches import kaleido_grid
from kaleido.records import manifest as manifest_lib
from kaleido.text import vocab as vocab_lib
from kaleido.utils import files
from kaleido.utils import restoring

VOCAB_NAME = "vocab.txt"
CHECKPOINT_DIR = "checkpoints"
TRAIN_HINT = "train one with python data/train_aag.py --input PREPARED_FOLDER --output_dir DIR"


def captioner_config_for(manifest: manifest_lib.Manifest, folder: str,
                         **architecture) -> config_lib.CaptionerConfig:
  """A captioner config speaking the vocabulary of the prepared `folder`."""
  if not os.path.isfile(manifest.vocab_file):
    raise align_config.AlignmentError(
        f"The vocabulary {manifest.vocab_file!r} named in the manifest of {folder!r} is missing; "
        "restore it or re-run python data/prepare.py.")
  if files.file_sha256(manifest.vocab_file) != manifest.vocab_hash:
    raise align_config.AlignmentError(
        f"The vocabulary {manifest.vocab_file!r} changed since {folder!r} was prepared (its "
        "SHA-256 differs from the manifest's); restore it or re-run python data/prepare.py.")
  ids = vocab_lib.special_ids_of(manifest.vocab_file)
  return config_lib.CaptionerConfig(
      vocab_size=ids.vocab_size, vocab_hash=manifest.vocab_hash, cls_id=ids.cls_id,
      sep_id=ids.sep_id, pad_id=ids.pad_id, max_length=manifest.max_seq_length, **architecture)


def copy_vocab(directory: str, vocab_file: str) -> None:
  """Writes a copy of the vocabulary into `directory`, atomically."""
  os.makedirs(directory, exist_ok=True)
  with files.atomic_path(os.path.join(directory, VOCAB_NAME)) as tmp_path:
    shutil.copyfile(vocab_file, tmp_path)


def read_config(directory: str) -> config_lib.CaptionerConfig:
  """The captioner config of a captioner directory."""
  if not os.path.isdir(directory):
    raise align_config.AlignmentError(f"AAG checkpoint directory {directory!r} does not exist; "
                                      f"{TRAIN_HINT}.")
  if not os.path.isfile(os.path.join(directory, config_lib.RUN_CONFIG_NAME)):
    raise align_config.AlignmentError(f"{directory!r} has no {config_lib.RUN_CONFIG_NAME}, so it "
                                      f"is no AAG checkpoint; {TRAIN_HINT}.")
  model = config_lib.load(directory).model
  if not isinstance(model, config_lib.CaptionerConfig):
    raise align_config.AlignmentError(
        f"{directory!r} holds a {model.kind} run, not an alignment captioner; {TRAIN_HINT}.")
  return model


def vocab_tokens(directory: str) -> list[str]:
  """The vocabulary copy of a checkpoint directory."""
  return vocab_lib.read_vocab(os.path.join(directory, VOCAB_NAME))


def check_matches_data(config: config_lib.CaptionerConfig, directory: str, vocab_hash: str,
                       patch_size: int, folder: str) -> None:
  """Refuses a checkpoint whose vocabulary or image size does not suit the data of `folder`
  (prepared with the vocabulary of SHA-256 `vocab_hash` and `patch_size`-pixel patches)."""
  if config.vocab_hash != vocab_hash:
    raise align_config.AlignmentError(
        f"The AAG checkpoint {directory!r} speaks another vocabulary ({config.vocab_size} "
        f"tokens, sha256 {config.vocab_hash[:12]}) than {folder!r} (sha256 "
        f"{vocab_hash[:12]}); train the captioner on this data with python "
        f"data/train_aag.py --input {folder} --output_dir DIR.")
  largest = kaleido_grid.LEVELS[-1] * patch_size
  if config.image_size > largest:
    raise align_config.AlignmentError(
        f"The AAG checkpoint {directory!r} reads {config.image_size}-pixel crops but {folder!r} "
        f"stores crops of at most {largest} pixels (5 x patch size {patch_size}); "
        f"train the captioner with --image_size <= {largest} on this data.")


def latest_checkpoint(directory: str) -> str:
  """Path prefix of the newest checkpoint in `directory`."""
  latest = restoring.newest_readable(os.path.join(directory, CHECKPOINT_DIR), set_aside=False)
  if not latest:
    raise align_config.AlignmentError(f"AAG checkpoint directory {directory!r} holds no trained "
                                    f"weights yet; {TRAIN_HINT}.")
  return latest


def load_captioner(directory: str) -> captioner_lib.Captioner:
  """The trained captioner of a checkpoint directory (weights of its newest checkpoint)."""
  config = read_config(directory)
  latest = latest_checkpoint(directory)
  captioner = captioner_lib.Captioner(config)
  restoring.restore(latest, {"model": captioner},
                    f"the architecture in its config differs; restore the matching config or "
                    f"{TRAIN_HINT}", error_type=align_config.AlignmentError)
  return captioner


def fingerprint(directory: str) -> str:
  """Identifies the config and weights of the newest checkpoint (SHA-256 of both)."""
  architecture = dataclasses.asdict(read_config(directory))
  architecture.pop("cnn_trainable")  # how it was trained, not what it computes
  digest = hashlib.sha256(json.dumps(architecture, sort_keys=True).encode())
  digest.update(files.file_sha256(latest_checkpoint(directory) + ".index").encode())
  return digest.hexdigest()
