r"""Writes a PNG of what the alignment generator aligns for a few prepared examples: per product
the crop with its grid, then per aligned word the attention heat map, the region kept and the
chosen L3 (red), L4 (yellow) and L5 (cyan) patches.

  python tools/show_alignments.py --data workdir/demo/prepared/validation \
      --aag_checkpoint runs/aag_demo --output alignments.png [--count 6] [--skip 0]
"""

from absl import app
from absl import flags

from kaleido import errors
from kaleido.alignment import flags as align_flags
from kaleido.utils import cli
# pylint: enable=g-import-not-at-top,wrong-import-position

_DATA = flags.DEFINE_string("data", None, "A folder written by data/prepare.py.")
_CHECKPOINT = flags.DEFINE_string("aag_checkpoint", None, "Output directory of data/train_aag.py.")
_OUTPUT = flags.DEFINE_string("output", "alignments.png", "PNG to write.")
_COUNT = flags.DEFINE_integer("count", 6, "Examples to show.", lower_bound=1)
_SKIP = flags.DEFINE_integer("skip", 0, "Examples to skip first.", lower_bound=0)
_MAX_WORDS = flags.DEFINE_integer("max_words", 6, "Aligned words shown per example.",
                                  lower_bound=1)
align_flags.define_align_flags()
flags.adopt_module_key_flags(align_flags)


@cli.user_errors_as_messages
def main(argv):
  if len(argv) > 1:
    raise errors.KaleidoError(f"Unexpected arguments {argv[1:]}; pass everything as --flags.")
  from kaleido.alignment import generator  # pylint: disable=g-import-not-at-top
  from kaleido.alignment import inputs  # pylint: disable=g-import-not-at-top
  from kaleido.alignment import pictures  # pylint: disable=g-import-not-at-top
  from kaleido.patches import pictures as patch_pictures  # pylint: disable=g-import-not-at-top
  config = align_flags.align_config()
  manifest = inputs.load_prepared(_DATA.value)
  aligner = generator.AlignmentGenerator.from_checkpoint(_CHECKPOINT.value, config, manifest,
                                                         _DATA.value)
  dataset = inputs.example_dataset(manifest.shard_paths(_DATA.value), aligner.captioner_config,
                                   _COUNT.value).unbatch().skip(_SKIP.value).batch(_COUNT.value)
  batch = next(iter(dataset), None)
  if batch is None:
    raise errors.KaleidoError(f"{_DATA.value!r} has no examples after skipping {_SKIP.value}.")
  images = batch["image"].numpy()
  ids = [row[:n] for row, n in zip(batch["token_ids"].numpy(), batch["length"].numpy())]
  results = aligner.align(images, ids)
  patch_pictures.write_png(_OUTPUT.value, pictures.alignment_picture(
      images, results, max_words=_MAX_WORDS.value))
  pairs = sum(result.alignment.num_pairs for result in results)
  print(f"Wrote {len(results)} examples ({pairs} pairs) to {_OUTPUT.value}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["data", "aag_checkpoint"])
  app.run(main)
