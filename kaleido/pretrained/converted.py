"""The project's own BERT checkpoint format, written by tools/convert_checkpoint.py.

A directory holding:
- `config.json`: {"format": "kaleido-bert-checkpoint/1", "sizes": BertSizes fields, "source":
  where it was converted from, "vocab_file": "vocab.txt" or null};
- `weights.npz`: float32 arrays by canonical name (see bert_checkpoint);
- `vocab.txt`: a byte copy of the checkpoint's vocabulary, when it had one.
The directory is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import dataclasses
import os
import shutil

import numpy as np

from kaleido import errors
from kaleido.pretrained import bert_checkpoint as canonical
from kaleido.utils import files

FORMAT = "kaleido-bert-checkpoint/1"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.npz"


def is_converted(directory: str) -> bool:
  """Whether `directory` has a config.json of this format."""
  path = os.path.join(directory, CONFIG_FILE)
  return os.path.isfile(path) and canonical.read_json_file(path).get("format") == FORMAT


def write(checkpoint: canonical.BertCheckpoint, output_dir: str) -> None:
  """Writes `checkpoint` as a new directory `output_dir`, atomically."""
  if os.path.exists(output_dir):
    raise errors.KaleidoError(f"{output_dir!r} already exists; choose a new output path or "
                              "delete it first.")
  tmp_dir = f"{output_dir}.tmp-{os.getpid()}"
  shutil.rmtree(tmp_dir, ignore_errors=True)
  os.makedirs(tmp_dir)  # also makes the parent folders
  try:
    np.savez(os.path.join(tmp_dir, WEIGHTS_FILE), **checkpoint.weights)
    vocab_name = None
    if checkpoint.vocab_file:
      vocab_name = canonical.VOCAB_FILE
      shutil.copyfile(checkpoint.vocab_file, os.path.join(tmp_dir, vocab_name))
    files.write_json(os.path.join(tmp_dir, CONFIG_FILE), {
        "format": FORMAT, "sizes": dataclasses.asdict(checkpoint.sizes),
        "source": checkpoint.source, "vocab_file": vocab_name})
    os.rename(tmp_dir, output_dir)
  finally:
    shutil.rmtree(tmp_dir, ignore_errors=True)


def read(directory: str) -> canonical.BertCheckpoint:
  """A directory written by `write`."""
  config_path = os.path.join(directory, CONFIG_FILE)
  config = canonical.read_json_file(config_path)
  try:
    sizes = canonical.BertSizes(**config["sizes"])
  except (KeyError, TypeError) as error:
    raise errors.KaleidoError(f"{config_path!r} does not hold valid {FORMAT} sizes ({error}); "
                              "convert the checkpoint again.") from error
  weights_path = os.path.join(directory, WEIGHTS_FILE)
  if not os.path.isfile(weights_path):
    raise errors.KaleidoError(f"Converted checkpoint {directory!r} has no {WEIGHTS_FILE}; "
                              "convert the checkpoint again.")
  with np.load(weights_path) as arrays:
    weights = {name: arrays[name] for name in arrays.files}
  vocab_file = os.path.join(directory, config["vocab_file"]) if config.get("vocab_file") else None
  source = f"converted checkpoint {directory!r} (from {config.get('source')})"
  return canonical.make_checkpoint(sizes, weights, vocab_file, source)
