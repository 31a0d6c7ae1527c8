r"""Pre-trains the patch backbone on a prepared catalog's own image-text pairs (word prediction).

  python tools/pretrain_backbone.py --train_data DIR --output backbone.h5 [--backbone small]

For catalogs without ImageNet weights at hand: the backbone learns to predict, from the product
crop, the words of the product's text (see kaleido/pretraining/backbone.py). Pass the output to
train.py as --resnet_weights; train.py --resnet_weights=catalog does the same on first use.
"""

from absl import app
from absl import flags

from kaleido import config as config_lib
from kaleido.utils import cli

_TRAIN_DATA = flags.DEFINE_string("train_data", None, "A prepared training folder.")
_OUTPUT = flags.DEFINE_string("output", None, "The Keras .h5 weights file to write.")
_BACKBONE = flags.DEFINE_enum("backbone", "small", list(config_lib.BACKBONES),
                              "The patch backbone to pre-train.")
_STEPS = flags.DEFINE_integer("train_steps", 800, "Optimizer steps.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Images per step.")
_LEARNING_RATE = flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the initial weights and the data order.")


@cli.user_errors_as_messages
def main(argv):
  del argv
  from kaleido.pretraining import backbone  # pylint: disable=g-import-not-at-top
  backbone.train_backbone(backbone.BackboneTrainingConfig(
      train_data=_TRAIN_DATA.value, output_path=_OUTPUT.value, backbone=_BACKBONE.value,
      train_steps=_STEPS.value, batch_size=_BATCH_SIZE.value,
      learning_rate=_LEARNING_RATE.value, seed=_SEED.value))


if __name__ == "__main__":
  flags.mark_flags_as_required(["train_data", "output"])
  app.run(main)
