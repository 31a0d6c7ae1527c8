r"""Pre-trains the patch CNN on a prepared catalog's own image-text pairs (word prediction).

  python tools/pretrain_patch_cnn.py --train_data DIR --output patch_cnn.h5 [--patch_cnn small]

For catalogs without ImageNet weights at hand: the patch CNN learns to predict, from the product
crop, the words of the product's text (kaleido/tasks/patch_cnn_words.py). Pass the output to
train.py as --patch_cnn_weights; train.py --patch_cnn_weights=catalog does the same on first
use. The run itself (checkpoints, TensorBoard, resume) lives in --model_dir, by default beside
the output.
"""

import os
import sys

from absl import app
from absl import flags

from kaleido import config as config_lib
from kaleido.utils import cli

_TRAIN_DATA = flags.DEFINE_string("train_data", None, "A prepared training folder.")
_OUTPUT = flags.DEFINE_string("output", None, "The Keras .h5 weights file to write.")
_MODEL_DIR = flags.DEFINE_string("model_dir", "", "The run's folder (default: OUTPUT without "
                                 ".h5, plus _run).")
_PATCH_CNN = flags.DEFINE_enum("patch_cnn", "small", list(config_lib.CNNS),
                               "The patch CNN to pre-train.")
_STEPS = flags.DEFINE_integer("train_steps", 800, "Optimizer steps.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Images per step.")
_LEARNING_RATE = flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the initial weights and the data order.")


@cli.user_errors_as_messages
def main(argv):
  del argv
  from kaleido.tasks import patch_cnn_words  # pylint: disable=g-import-not-at-top
  model_dir = _MODEL_DIR.value or os.path.splitext(_OUTPUT.value)[0] + "_run"
  config = patch_cnn_words.experiment(_TRAIN_DATA.value, model_dir, _PATCH_CNN.value,
                                      _STEPS.value, _SEED.value, _BATCH_SIZE.value,
                                      _LEARNING_RATE.value)
  losses = patch_cnn_words.train_and_export(config, _OUTPUT.value)
  print(f"Patch CNN word prediction: loss {losses.get('words', float('nan')):.3f} over the last "
        f"steps; weights in {_OUTPUT.value}", file=sys.stderr)


if __name__ == "__main__":
  flags.mark_flags_as_required(["train_data", "output"])
  app.run(main)
