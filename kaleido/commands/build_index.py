r"""Builds the search index of a prepared folder with a trained run (kaleido.search.index).

  python tools/build_index.py --checkpoint runs/demo_retrieval_itc \
      --data workdir/demo/prepared/validation --output runs/index_demo

Every image's ITC embedding, its patch features (the re-ranker's image side) and a thumbnail,
and every text's embedding, in chunks written atomically: rerun the same command after an
interruption and it continues at the first missing chunk. A run with a frozen patch CNN reads
the patch features from the folder's feature cache (kaleido.feature_cache), built on first use. The run needs the contrastive head
(train.py --task=retrieval --itc_weight=1, or pre-training with --tasks=...,itc).
"""

from absl import flags
from absl import logging

from kaleido.feature_cache import flags as feature_cache_flags
from kaleido.search import defaults
from kaleido.utils import cli

_CHECKPOINT = flags.DEFINE_string("checkpoint", None,
                                  "A train.py --model_dir, or one of its checkpoints.")
_DATA = flags.DEFINE_string("data", None, "A folder prepared by data/prepare.py.")
_OUTPUT = flags.DEFINE_string("output", None, "The index folder (new, or this build's own).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", defaults.BATCH_SIZE, "Images per model call.")
_CHUNK_SIZE = flags.DEFINE_integer("chunk_size", defaults.CHUNK_SIZE,
                                   "Images per chunk file (the unit of resumption).")
_RETRIEVAL_TEXT = flags.DEFINE_enum(
    "retrieval_text", None, ["name", "description"], "The text side: product names or the "
    "prepared texts; default: what the run was fine-tuned on (names for pre-training runs).")
_PATCH_FEATURES = feature_cache_flags.define_patch_features_flag()


@cli.user_errors_as_messages
def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  from kaleido.search import index  # pylint: disable=g-import-not-at-top
  info = index.build_index(_CHECKPOINT.value, _DATA.value, _OUTPUT.value, _BATCH_SIZE.value,
                           _CHUNK_SIZE.value, _RETRIEVAL_TEXT.value or "",
                           patch_features=_PATCH_FEATURES.value)
  print(f"Index of {info['num_images']} images ({info['retrieval_text']} texts, "
        f"{info['embedding_size']}-d embeddings) in {_OUTPUT.value}, built with "
        f"{info['checkpoint']}.")


def run() -> None:
  """The `kaleido-index` command."""
  flags.mark_flags_as_required(["checkpoint", "data", "output"])
  cli.run(main)


if __name__ == "__main__":
  run()
