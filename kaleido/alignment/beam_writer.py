"""Alignment pairs written on Apache Beam: kaleido.alignment.writer's per-shard step, one shard
per element, on any Beam runner.

Each Beam worker loads the generator once (`DoFn.setup`) and rewrites whole shards with
`writer.align_and_record`, which also records the shard's counts in progress/; the launching
process checks the generator against the data first and writes the manifest last
(`writer.finish_alignments`), so a retried or rerun shard is counted once.
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

import apache_beam as beam

from kaleido.alignment import config as align_config
from kaleido.alignment import generator as generator_lib
from kaleido.alignment import inputs
from kaleido.alignment import writer
from kaleido.records import beam_prepare
from kaleido.records import manifest as manifest_lib
from kaleido.utils import interrupts
from kaleido.utils import progress as progress_lib


class _AlignShards(beam.DoFn):
  """A shard path -> its file name, the shard rewritten with the generator's pairs."""

  def __init__(self, folder: str, checkpoint_dir: str, config: align_config.AlignConfig,
               batch_size: int, fingerprint: str):
    super().__init__()
    self._folder = folder
    self._checkpoint_dir = checkpoint_dir
    self._config = config
    self._batch_size = batch_size
    self._fingerprint = fingerprint
    self._aligner = None
    self._sizes: dict[str, int] = {}
    self._driver_pid = os.getpid()

  def setup(self):
    interrupts.become_worker(self._driver_pid)
    manifest = inputs.load_prepared(self._folder)
    self._aligner = generator_lib.AlignmentGenerator.from_checkpoint(
        self._checkpoint_dir, self._config, manifest, self._folder)
    self._sizes = {os.path.basename(path): shard["num_examples"]
                   for path, shard in zip(manifest.shard_paths(self._folder), manifest.shards)}

  def process(self, path: str):
    name = os.path.basename(path)
    progress = progress_lib.Progress(self._sizes[name], f"align {name}", unit="examples")
    counts = writer.align_and_record(path, self._aligner, self._batch_size, self._fingerprint,
                                     progress)
    progress.close()
    print(f"align: wrote {counts.num_pairs} pairs into {name}", file=sys.stderr, flush=True)
    yield name


def add_alignments(folder: str, checkpoint_dir: str, config: align_config.AlignConfig,
                   batch_size: int = 64, runner: str = "DirectRunner", options: Sequence[str] = (),
                   workers: int = 1) -> manifest_lib.Manifest:
  """writer.add_alignments with the shards rewritten by a Beam pipeline on `runner` (given its
  command-line `options`; a DirectRunner gets `workers` processes)."""
  manifest = inputs.load_prepared(folder)
  # Refused here, in one sentence, before any worker starts.
  generator_lib.AlignmentGenerator.from_checkpoint(checkpoint_dir, config, manifest, folder)
  fingerprint = writer.settings_fingerprint(checkpoint_dir, config)
  writer.clear_killed_writes(folder)
  beam_prepare.run_over_shards(
      writer.pending_shards(folder, fingerprint),
      _AlignShards(folder, checkpoint_dir, config, batch_size, fingerprint), "Align", runner,
      options, workers)
  return writer.finish_alignments(folder, fingerprint, os.path.abspath(checkpoint_dir))
