"""The --runner and --beam_options flags of the data tools (data/prepare.py,
data/add_alignments.py): the local process pool or an Apache Beam runner."""

from __future__ import annotations

import shlex

from absl import flags

from kaleido import errors

POOL = "pool"


def define_runner_flags() -> None:
  """Defines --runner and --beam_options in the calling tool."""
  flags.DEFINE_string(
      "runner", POOL, "Who does the per-image work: pool (processes on this machine) or an "
      "Apache Beam runner by name (DirectRunner, PrismRunner, DataflowRunner, FlinkRunner, "
      "SparkRunner). Both write the same shards.")
  flags.DEFINE_string(
      "beam_options", "", "Pipeline options for the Beam runner, as on its command line, e.g. "
      "\"--project=P --region=R --temp_location=gs://B/tmp\" for Dataflow.")


def beam_runner() -> tuple[str, list[str]] | None:
  """(runner, its options) when --runner names a Beam runner, None for the local pool; one
  sentence when Beam is not installed."""
  runner = flags.FLAGS.runner
  if runner == POOL:
    return None
  try:
    from apache_beam import runners  # pylint: disable=g-import-not-at-top
  except ImportError as error:
    raise errors.KaleidoError(f"--runner={runner} runs on Apache Beam, which is not installed; "
                              "pip install -r requirements.txt, or use --runner=pool.") from error
  try:
    runners.create_runner(runner)
  except (ValueError, ImportError) as error:
    raise errors.KaleidoError(f"--runner={runner} is not a Beam runner this installation can "
                              f"start ({str(error).splitlines()[0][:200]}); use --runner=pool, "
                              "DirectRunner, or a runner whose extras are installed (e.g. "
                              "pip install 'apache-beam[gcp]' for DataflowRunner).") from error
  return runner, shlex.split(flags.FLAGS.beam_options)
