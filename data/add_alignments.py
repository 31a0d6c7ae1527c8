r"""Writes the alignment generator's (token, patch, score) pairs into a prepared folder.

  python data/add_alignments.py --data workdir/demo/prepared/train --aag_checkpoint runs/aag_demo \
      [--decoding greedy|beam] [--beam_size 3] [--min_score 0.5]

Shards are rewritten in place, one at a time and atomically; the patches are not recomputed and
every other field stays as it was. A rerun skips the shards already aligned with the same
checkpoint and settings (another checkpoint or other settings redo them). The manifest then
records how many examples got pairs (`num_with_alignments`), how many got none
(`num_without_alignments`), the number of pairs and the checkpoint used. Pre-training with
--masking=agm uses the pairs. With --runner (an Apache Beam runner, options in --beam_options)
the shards are rewritten by a Beam pipeline, one shard per element, with the same result.
"""

from __future__ import annotations

from absl import app
from absl import flags

from kaleido import errors
from kaleido.alignment import flags as align_flags
from kaleido.alignment import writer
from kaleido.records import beam_flags
from kaleido.utils import cli
# pylint: enable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS
flags.DEFINE_string("data", None, "Prepared folder (data/prepare.py output) to add pairs to.")
flags.DEFINE_string("aag_checkpoint", None, "Output directory of data/train_aag.py.")
flags.DEFINE_integer("batch_size", 64, "Crops captioned at once.")
align_flags.define_align_flags()
flags.adopt_module_key_flags(align_flags)
flags.DEFINE_integer("workers", 2, "With --runner=DirectRunner: its worker processes.")
beam_flags.define_runner_flags()
flags.mark_flags_as_required(["data", "aag_checkpoint"])


@cli.user_errors_as_messages
def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise errors.KaleidoError(f"Unexpected arguments {argv[1:]}; pass everything as --flags.")
  if FLAGS.batch_size < 1:
    raise errors.KaleidoError(f"--batch_size={FLAGS.batch_size} must be at least 1.")
  beam = beam_flags.beam_runner()
  if beam:
    from kaleido.alignment import beam_writer  # pylint: disable=g-import-not-at-top
    manifest = beam_writer.add_alignments(FLAGS.data, FLAGS.aag_checkpoint,
                                          align_flags.align_config(), FLAGS.batch_size, *beam,
                                          workers=FLAGS.workers)
  else:
    manifest = writer.add_alignments(FLAGS.data, FLAGS.aag_checkpoint,
                                     align_flags.align_config(), FLAGS.batch_size)
  print(f"{FLAGS.data}: {manifest.num_with_alignments} of {manifest.num_examples} examples have "
        f"pairs ({manifest.num_alignment_pairs} pairs), {manifest.num_without_alignments} got "
        "none")


if __name__ == "__main__":
  app.run(main)
