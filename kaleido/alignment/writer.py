"""Adds alignment pairs to the shards of a prepared folder without recomputing the patches.

Each shard is read, its examples are captioned and aligned in batches, and the shard is written
again under a temporary name and renamed over the old one: only `align_token`, `align_patch` and
`align_score` change, every other feature keeps its bytes. The counts of a finished shard go to
`progress/alignments-<shard>.json` with a fingerprint of the generator checkpoint and settings,
so a rerun skips the shards already done with the same generator and redoes the others. The
manifest's alignment counts are written last.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

import tensorflow as tf

from kaleido.alignment import captioner_dir
from kaleido.alignment import config as align_config
from kaleido.alignment import generator as generator_lib
from kaleido.alignment import inputs
from kaleido.alignment import pairs
from kaleido.records import manifest as manifest_lib
from kaleido.utils import files
from kaleido.utils import interrupts
from kaleido.utils import progress as progress_lib

PROGRESS_DIR = "progress"
PROGRESS_PREFIX = "alignments-"


@dataclasses.dataclass
class ShardCounts:
  """What aligning one shard gave."""
  file: str
  fingerprint: str
  num_examples: int = 0
  num_with_alignments: int = 0
  num_without_alignments: int = 0
  num_pairs: int = 0


def with_alignment(serialized: bytes, alignment: pairs.ExampleAlignment) -> bytes:
  """The serialized example with its alignment features replaced by `alignment`'s pairs."""
  example = tf.train.Example.FromString(serialized)
  feature = example.features.feature
  for key in ("align_token", "align_patch", "align_score"):
    feature[key].Clear()
  feature["align_token"].int64_list.value.extend(int(v) for v in alignment.align_token)
  feature["align_patch"].int64_list.value.extend(int(v) for v in alignment.align_patch)
  feature["align_score"].float_list.value.extend(float(v) for v in alignment.align_score)
  return example.SerializeToString(deterministic=True)


def _progress_path(folder: str, shard_file: str) -> str:
  return os.path.join(folder, PROGRESS_DIR, f"{PROGRESS_PREFIX}{shard_file}.json")


def _finished(folder: str, shard_file: str, fingerprint: str) -> ShardCounts | None:
  payload = files.read_json_or_none(_progress_path(folder, shard_file))
  try:  # a missing or damaged resume record: the shard is redone
    counts = ShardCounts(**payload) if payload is not None else None
  except TypeError:
    return None
  return counts if counts is not None and counts.fingerprint == fingerprint else None


def _align_shard(path: str, aligner: generator_lib.AlignmentGenerator, batch_size: int,
                 fingerprint: str, progress: progress_lib.Progress) -> ShardCounts:
  """Rewrites one shard with pairs, atomically; returns its counts."""
  counts = ShardCounts(file=os.path.basename(path), fingerprint=fingerprint)
  records = []
  for batch in inputs.example_dataset([path], aligner.captioner_config, batch_size):
    ids = [row[:n] for row, n in zip(batch["token_ids"].numpy(), batch["length"].numpy())]
    results = aligner.align(batch["image"].numpy(), ids)
    for serialized, result in zip(batch["serialized"].numpy(), results):
      records.append(with_alignment(serialized, result.alignment))
      counts.num_examples += 1
      counts.num_pairs += result.alignment.num_pairs
      if result.alignment.num_pairs:
        counts.num_with_alignments += 1
      else:
        counts.num_without_alignments += 1
    progress.update(len(results))
  with files.atomic_path(path) as tmp_path:
    with tf.io.TFRecordWriter(tmp_path) as writer:
      for record in records:
        writer.write(record)
  return counts


def settings_fingerprint(checkpoint_dir: str, config: align_config.AlignConfig) -> str:
  """Identifies the generator weights and the pair settings."""
  payload = json.dumps([captioner_dir.fingerprint(checkpoint_dir), dataclasses.asdict(config)],
                       sort_keys=True)
  return hashlib.sha256(payload.encode()).hexdigest()


def add_alignments(folder: str, checkpoint_dir: str, config: align_config.AlignConfig,
                   batch_size: int = 64) -> manifest_lib.Manifest:
  """Writes the pairs of the generator in `checkpoint_dir` into every shard of `folder`."""
  manifest = inputs.load_prepared(folder)
  aligner = generator_lib.AlignmentGenerator.from_checkpoint(checkpoint_dir, config, manifest,
                                                             folder)
  return write_alignments(folder, aligner, settings_fingerprint(checkpoint_dir, config),
                          os.path.abspath(checkpoint_dir), batch_size)


def clear_killed_writes(folder: str) -> None:
  """Deletes the temporary shards and progress records of a run killed while writing them."""
  files.remove_stale_temporaries(folder, os.path.join(folder, PROGRESS_DIR))


def pending_shards(folder: str, fingerprint: str) -> list[str]:
  """The shard paths of `folder` not yet aligned with `fingerprint`."""
  manifest = inputs.load_prepared(folder)
  os.makedirs(os.path.join(folder, PROGRESS_DIR), exist_ok=True)
  return [path for path in manifest.shard_paths(folder)
          if _finished(folder, os.path.basename(path), fingerprint) is None]


def align_and_record(path: str, aligner: generator_lib.AlignmentGenerator, batch_size: int,
                     fingerprint: str, progress: progress_lib.Progress) -> ShardCounts:
  """Rewrites the shard at `path` with `aligner`'s pairs and records its counts in progress/
  (so a rerun skips it); the same step for the loop here and for a Beam pipeline."""
  counts = _align_shard(path, aligner, batch_size, fingerprint, progress)
  files.write_json(_progress_path(os.path.dirname(path), os.path.basename(path)),
                   dataclasses.asdict(counts))
  return counts


def write_alignments(folder: str, aligner: generator_lib.AlignmentGenerator, fingerprint: str,
                     checkpoint_name: str, batch_size: int = 64) -> manifest_lib.Manifest:
  """Writes `aligner`'s pairs into the shards of `folder` not yet done with `fingerprint`, then
  the manifest's counts (`checkpoint_name` is recorded as the generator used)."""
  clear_killed_writes(folder)
  pending = pending_shards(folder, fingerprint)
  manifest = inputs.load_prepared(folder)
  done = manifest.num_examples - sum(
      shard["num_examples"] for path, shard in zip(manifest.shard_paths(folder), manifest.shards)
      if path in pending)
  progress = progress_lib.Progress(manifest.num_examples, "align", unit="examples", initial=done)
  for path in interrupts.stopping_between(pending, "shard", "shards"):
    align_and_record(path, aligner, batch_size, fingerprint, progress)
  progress.close()
  return finish_alignments(folder, fingerprint, checkpoint_name)


def finish_alignments(folder: str, fingerprint: str, checkpoint_name: str) -> manifest_lib.Manifest:
  """The manifest of `folder` with the alignment counts of its shards (all aligned with
  `fingerprint`), written and returned."""
  manifest = inputs.load_prepared(folder)
  paths = manifest.shard_paths(folder)
  totals = [_finished(folder, os.path.basename(path), fingerprint) for path in paths]
  missing = [os.path.basename(path) for path, counts in zip(paths, totals) if counts is None]
  if missing:
    raise align_config.AlignmentError(
        f"Shards {missing[:3]} of {folder!r} have no pairs of this generator yet; rerun the same "
        "command to finish them.")
  manifest = dataclasses.replace(
      manifest,
      shards=[manifest_lib.shard_record(path, shard["num_examples"]) for path, shard in
              zip(paths, manifest.shards)],
      num_with_alignments=sum(c.num_with_alignments for c in totals),
      num_without_alignments=sum(c.num_without_alignments for c in totals),
      num_alignment_pairs=sum(c.num_pairs for c in totals),
      aag_checkpoint=checkpoint_name)
  manifest_lib.save(folder, manifest)
  return manifest
