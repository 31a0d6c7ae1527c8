"""Data preparation on Apache Beam: the same shards as the process pool, on any Beam runner.

The driver (kaleido.records.prepare) makes the first pass (label maps, conflicting rows, shard
layout) and writes the manifest; this pipeline does the per-row work in between, with the same
code as the pool: chunks of rows -> `worker.process_chunk` (decode, foreground, crop, encode)
-> the prepare module's example encoder (tokenise, serialise) -> grouped by shard -> each shard
sorted by row and written atomically by `prepare.write_shard`, which also records its counts in
progress/. The counts travel with the data, not in Beam metrics, so a retried bundle replaces
its output instead of adding to it; a shard written twice is the same bytes.

  DirectRunner (local):  --runner=DirectRunner --beam_options="--direct_num_workers=2
                          --direct_running_mode=multi_processing"
  Dataflow, Flink, Spark: --runner=DataflowRunner --beam_options="--project=... --region=...
                          --temp_location=gs://..." (workers need this package installed, e.g.
                          --setup_file or a container image; output on a filesystem they share)
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Any, Iterator, Sequence

import apache_beam as beam
from apache_beam.options import pipeline_options as options_lib

from kaleido import errors
from kaleido.records import manifest as manifest_lib
from kaleido.records import prepare
from kaleido.records import prepare_config
from kaleido.records import worker
from kaleido.utils import interrupts


class _EncodeChunks(beam.DoFn):
  """ChunkTask -> (shard, (first row, serialized examples, counts)); one encoder per worker."""

  def __init__(self, config: prepare_config.PrepareConfig, plan: prepare.Plan):
    super().__init__()
    self._config = config
    self._plan = plan
    self._encoder = None
    self._driver_pid = os.getpid()

  def setup(self):
    worker.initialize_worker(in_child=False)
    interrupts.become_worker(self._driver_pid)
    self._encoder = prepare.example_encoder(self._config, self._plan)

  def process(self, task: worker.ChunkTask):
    records, stats = self._encoder.encode(worker.process_chunk(task))
    yield self._plan.shard_of_row(task.start), (task.start, records, stats)


def _write_shard(config: prepare_config.PrepareConfig, plan: prepare.Plan, keyed) -> str:
  shard, chunks = keyed
  ordered = sorted(chunks, key=lambda chunk: chunk[0])
  stats = prepare.write_shard(config, plan, shard,
                              ((records, stats) for _, records, stats in ordered))
  print(f"prepare: wrote shard {shard + 1} of {plan.num_shards} ({stats.num_examples} "
        "examples)", file=sys.stderr, flush=True)
  return stats.file


def pipeline_options(runner: str, options: Sequence[str],
                     workers: int) -> options_lib.PipelineOptions:
  """`runner` with its command-line `options`; a local DirectRunner gets `workers` processes
  unless the options say otherwise (each of --direct_num_workers and --direct_running_mode given
  in them wins)."""
  logging.getLogger("apache_beam").setLevel(logging.WARNING)  # the local workers' chatter
  flags = list(options)
  given = lambda name: any(flag.startswith(f"--{name}") for flag in flags)
  if runner == "DirectRunner":
    if not given("direct_num_workers"):
      flags.append(f"--direct_num_workers={max(1, workers)}")
    if not given("direct_running_mode"):
      flags.append("--direct_running_mode=" + ("multi_processing" if workers > 1
                                                else "in_memory"))
  if not given("default_sdk_harness_log_level"):
    flags.append("--default_sdk_harness_log_level=ERROR")  # workers warn of their own args
  return options_lib.PipelineOptions(flags, runner=runner)


@contextlib.contextmanager
def pipeline(options: options_lib.PipelineOptions) -> Iterator[beam.Pipeline]:
  """A pipeline on `options`, run when the block ends; options the runner refuses (e.g. Dataflow
  without --project) in one sentence. Local worker processes (DirectRunner's multi_processing)
  end with this process, also when it is SIGKILLed before they start work
  (interrupts.reaping_descendants)."""
  try:
    running = beam.Pipeline(options=options)
  except ValueError as error:
    problems = "; ".join(line.strip().rstrip(".") for line in str(error).splitlines()[1:]
                         if line.strip()) or str(error)
    raise errors.KaleidoError(f"The {options.get_all_options()['runner']} pipeline options are "
                              f"incomplete ({problems}); pass them in --beam_options.") from error
  reaping = (interrupts.reaping_descendants() if _starts_local_workers(options)
             else contextlib.nullcontext())
  with reaping, running:
    yield running


def _starts_local_workers(options: options_lib.PipelineOptions) -> bool:
  """Whether `options` run a DirectRunner whose workers are processes of this machine (not its
  in-memory or threaded modes, nor a remote runner)."""
  all_options = options.get_all_options()
  return (all_options.get("runner") in (None, "DirectRunner") and
          all_options.get("direct_running_mode") == "multi_processing")


def run_over_shards(shards: Sequence[Any], do_fn: beam.DoFn, step: str, runner: str,
                    options: Sequence[str], workers: int) -> None:
  """Runs `do_fn` over each of `shards`, spread over the workers, on a pipeline on `runner`
  (`options`, `workers` as pipeline_options); returns when it is done (at once when there is
  nothing to do)."""
  if not shards:
    return
  with pipeline(pipeline_options(runner, options, workers)) as running:
    _ = (running
         | "Shards" >> beam.Create(list(shards))
         | "Spread" >> beam.Reshuffle()
         | step >> beam.ParDo(do_fn))


def prepare_catalog(config: prepare_config.PrepareConfig, runner: str = "DirectRunner",
                    options: Sequence[str] = ()) -> manifest_lib.Manifest:
  """kaleido.records.prepare.prepare_catalog with the shards written by a Beam pipeline on
  `runner` (DirectRunner, DataflowRunner, FlinkRunner, ...) given its command-line `options`."""
  plan = prepare.plan_catalog(config)
  if plan.pending:
    write_shards(config, plan, pipeline_options(runner, options, config.workers))
  return prepare.finish(config, plan)


def write_shards(config: prepare_config.PrepareConfig, plan: prepare.Plan,
                 options: options_lib.PipelineOptions) -> None:
  """Writes `plan.pending` shards of `config.output_dir`; returns when the pipeline is done."""
  with pipeline(options) as running:
    _ = (running
         | "Shards" >> beam.Create(list(plan.pending))
         | "Chunks" >> beam.FlatMap(lambda shard: plan.chunk_tasks(config, [shard]))
         | "Spread" >> beam.Reshuffle()
         | "Cut and encode" >> beam.ParDo(_EncodeChunks(config, plan))
         | "By shard" >> beam.GroupByKey()
         | "Write" >> beam.Map(lambda keyed: _write_shard(config, plan, keyed)))
