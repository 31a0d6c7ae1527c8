"""`manifest.json`: what a prepared TFRecord folder holds and how it was made."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import tensorflow as tf

from kaleido import errors
from kaleido.records import schema
from kaleido.utils import files

MANIFEST_NAME = "manifest.json"


class ManifestError(errors.KaleidoError):
  """A prepared folder that is missing, unfinished or inconsistent."""


@dataclasses.dataclass
class Manifest:
  """Counts, label maps and settings of a prepared folder."""
  num_examples: int
  num_skipped: int
  skipped_reasons: dict[str, int]
  num_patches: int
  patch_size: int
  vocab_file: str
  vocab_hash: str
  max_seq_length: int
  categories: dict[str, int]
  subcategories: dict[str, int]
  schema_version: int
  source: str
  text_field: str
  foreground_method: str
  num_foreground_fallback: int
  num_truncated: int
  num_unknown_labels: int
  num_with_alignments: int
  num_products: int
  # [{"file": name, "num_examples": n, "num_bytes": size, "sha256": hex digest}] (older
  # manifests lack the size and digest)
  shards: list[dict[str, Any]]
  # Written by data/add_alignments.py (absent from older manifests): examples the alignment
  # generator gave no pairs, pairs written in all, and the generator checkpoint used.
  num_without_alignments: int = 0
  num_alignment_pairs: int = 0
  aag_checkpoint: str = ""
  # Examples whose product name (title) is stored with its token ids (0 in folders prepared
  # before names were stored).
  num_with_name: int = 0
  # Rows of products on the other side of a split by product (--holdout_fraction), not written.
  num_other_split: int = 0
  # The text encoding a Fashion-Gen file was read with ("utf-8" for JSON lines; "" in older
  # manifests).
  text_encoding: str = ""

  def shard_paths(self, folder: str) -> list[str]:
    """Absolute paths of the shard files inside `folder`."""
    return [os.path.join(folder, shard["file"]) for shard in self.shards]


def label_names(manifest: Manifest, task: str) -> tuple[str, ...]:
  """Class names by id of a category or subcategory task; () for other tasks, or when the ids
  are not 0..N-1 (config.validate refuses that with the fix)."""
  if task not in ("category", "subcategory"):
    return ()
  label_map = manifest.categories if task == "category" else manifest.subcategories
  names = sorted(label_map, key=label_map.get)
  if [label_map[name] for name in names] != list(range(len(names))):
    return ()
  return tuple(names)


def save(folder: str, manifest: Manifest) -> str:
  """Writes `folder/manifest.json` atomically and returns its path."""
  path = os.path.join(folder, MANIFEST_NAME)
  files.write_json(path, dataclasses.asdict(manifest))
  return path


def load(folder: str) -> Manifest:
  """Reads and checks the manifest of a prepared folder."""
  path = os.path.join(folder, MANIFEST_NAME)
  if not os.path.isdir(folder):
    raise ManifestError(f"Prepared data folder {folder!r} does not exist; create it with "
                        "python data/prepare.py --input CATALOG --output_dir FOLDER.")
  if not os.path.exists(path):
    raise ManifestError(f"{folder!r} has no {MANIFEST_NAME}, so its preparation never finished; "
                        "re-run python data/prepare.py with the same --output_dir to complete it.")
  payload = files.read_json(path, _REPREPARE)
  _check_types(payload, path)
  fields = dataclasses.fields(Manifest)
  known = {field.name for field in fields}
  required = {field.name for field in fields if field.default is dataclasses.MISSING}
  missing = sorted(required - set(payload))
  if missing:
    raise ManifestError(f"{path!r} lacks {', '.join(missing)}; it was written by another version "
                        "of this project, re-run python data/prepare.py.")
  manifest = Manifest(**{key: payload[key] for key in known if key in payload})
  if manifest.schema_version not in schema.READABLE_SCHEMA_VERSIONS:
    raise ManifestError(
        f"{path!r} has schema version {manifest.schema_version} but this code reads version "
        f"{schema.SCHEMA_VERSION}; re-run python data/prepare.py to rewrite the folder.")
  absent = [p for p in manifest.shard_paths(folder) if not os.path.exists(p)]
  if absent:
    raise ManifestError(f"{folder!r} is missing shard {os.path.basename(absent[0])!r} listed in "
                        f"its manifest ({len(absent)} missing); re-run python data/prepare.py.")
  return manifest


_REPREPARE = ("re-run python data/prepare.py with the same flags and --overwrite to write the "
              "folder again")
_JSON_TYPES = {"int": int, "str": str, "dict": dict, "list": list}


def _check_types(payload: dict[str, Any], path: str) -> None:
  """A ManifestError when a field holds a JSON value of the wrong type (a damaged manifest)."""
  for field in dataclasses.fields(Manifest):
    expected = _JSON_TYPES.get(str(field.type).split("[")[0])
    value = payload.get(field.name)
    if value is None or expected is None:
      continue
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
      raise ManifestError(f"{path!r} is damaged ({field.name} holds a JSON "
                          f"{type(value).__name__}, not a {expected.__name__}); {_REPREPARE}.")


def _reprepare_hint(folder: str, manifest: Manifest) -> str:
  return (f"re-prepare it: python data/prepare.py --input {manifest.source} --output_dir "
          f"{folder} --overwrite (then data/add_alignments.py again if it had alignment pairs)")


def check_shards(folder: str, manifest: Manifest, sha256: bool = False) -> None:
  """Refuses a folder whose shards are not the bytes its manifest lists: the size of each (a
  truncated or grown file), and with `sha256` its digest too. Folders prepared before the
  manifest held sizes and digests pass unchecked."""
  for shard, path in zip(manifest.shards, manifest.shard_paths(folder)):
    expected_size = shard.get("num_bytes")
    if expected_size is not None and os.path.getsize(path) != expected_size:
      raise ManifestError(
          f"Shard {path!r} is {os.path.getsize(path)} bytes but the manifest lists "
          f"{expected_size} (truncated or changed since it was written); "
          f"{_reprepare_hint(folder, manifest)}.")
    if sha256 and shard.get("sha256") and files.file_sha256(path) != shard["sha256"]:
      raise ManifestError(
          f"Shard {path!r} does not have the SHA-256 its manifest lists (its bytes changed "
          f"since it was written); {_reprepare_hint(folder, manifest)}.")


def read_records(folder: str, manifest: Manifest) -> list[bytes]:
  """Every serialized example of `folder`'s shards in order; a ManifestError naming the shard
  and the fix when one fails its checksums (damaged bytes of an unchanged size)."""
  records = []
  for path in manifest.shard_paths(folder):
    try:
      records += [record.numpy() for record in tf.data.TFRecordDataset(path)]
    except tf.errors.DataLossError as error:
      raise ManifestError(f"Shard {path!r} is damaged (its records fail their checksums); "
                          f"{_reprepare_hint(folder, manifest)}.") from error
  return records


def shard_record(path: str, num_examples: int) -> dict[str, Any]:
  """The manifest's entry of the shard file at `path`."""
  return {"file": os.path.basename(path), "num_examples": num_examples,
          "num_bytes": os.path.getsize(path), "sha256": files.file_sha256(path)}
