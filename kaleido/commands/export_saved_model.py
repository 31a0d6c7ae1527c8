r"""Exports a trained run as a SavedModel that takes raw image bytes and text.

  python tools/export_saved_model.py --checkpoint runs/demo_retrieval --output exports/retrieval
  python tools/export_saved_model.py --verify exports/retrieval   # every file intact, it loads
  saved_model_cli show --dir exports/retrieval --all

The signatures depend on the run's task (kaleido.serving.export): embed_image always; score for
pre-training and retrieval runs; classify for category and subcategory runs; caption and
caption_beam for captioning runs. Decoding, the foreground box and crop, the 55 patches and the
WordPiece tokenisation all run in the graph, so loading needs only `tensorflow` and
`tensorflow_text` (import tensorflow_text before tf.saved_model.load, for its ops).
"""

from absl import flags
from absl import logging

from kaleido.utils import cli

_CHECKPOINT = flags.DEFINE_string("checkpoint", None,
                                  "A train.py --model_dir, or one of its checkpoints.")
_OUTPUT = flags.DEFINE_string("output", None, "The SavedModel folder to write (must not exist).")
_VERIFY = flags.DEFINE_string(
    "verify", "", "Check an exported folder instead: every file the export wrote is there with its "
    "size and SHA-256 (kaleido_export.json), and it loads; one sentence naming a damaged file.")
_MIXED_PRECISION = flags.DEFINE_enum(
    "mixed_precision", "none", ["none", "mixed_bfloat16"], "Compute dtype of the exported graph "
    "(bfloat16 where the hardware has it; weights stay float32).")


@cli.user_errors_as_messages
def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # TensorFlow's saving INFO lines are noise here
  from kaleido.serving import export  # pylint: disable=g-import-not-at-top
  if _VERIFY.value:
    info = export.verify(_VERIFY.value)
    print(f"{_VERIFY.value}: {len(info.get('files', {}))} files intact, loads; signatures "
          f"{', '.join(info['signatures'])}.")
    return
  info = export.export(_CHECKPOINT.value, _OUTPUT.value, _MIXED_PRECISION.value)
  print(f"Exported {info['task']} run {info['checkpoint']} to {_OUTPUT.value}: signatures "
        f"{', '.join(info['signatures'])}.")


def run() -> None:
  """The `kaleido-export` command."""
  flags.register_multi_flags_validator(
      ["checkpoint", "output", "verify"],
      lambda values: bool(values["verify"]) or bool(values["checkpoint"] and values["output"]),
      "--checkpoint and --output are required (or --verify=FOLDER alone).")
  cli.run(main)


if __name__ == "__main__":
  run()
