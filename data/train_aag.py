r"""Trains the Attention-based Alignment Generator's captioner (paper section 3.3).

  python data/train_aag.py --input workdir/demo/prepared/train --output_dir runs/aag_demo \
      [--validation workdir/demo/prepared/validation] [--cnn small|resnet50] \
      [--image_size 128] [--steps 3000] [--batch_size 32]
  python data/train_aag.py --flagfile=configs/aag_demo.flags

--input is a folder written by data/prepare.py: the captioner learns its crops and token ids (the
same vocabulary, so its words can be compared with the texts). The output directory is the
checkpoint to pass to data/add_alignments.py --aag_checkpoint; rerun with the same flags to
resume, with a larger --steps to train on. Watch it with tensorboard --logdir OUTPUT_DIR.
"""

from __future__ import annotations

import os

from absl import app
from absl import flags

from kaleido import config as config_lib
from kaleido import errors
from kaleido.utils import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("input", None, "Prepared training folder (data/prepare.py output).")
flags.DEFINE_string("output_dir", None, "Checkpoint directory (also holds TensorBoard logs).")
flags.DEFINE_string("validation", "", "Optional prepared folder for the held-out losses, "
                    "evaluated at every checkpoint.")
flags.DEFINE_enum("cnn", "small", list(config_lib.CNNS),
                  "Feature grid: `small` (quick CPU runs) or `resnet50` (paper size).")
flags.DEFINE_string("cnn_weights", "", "Keras .h5 weights of the CNN, e.g. ImageNet "
                    "ResNet-50 (resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5).")
flags.DEFINE_bool("cnn_trainable", True, "Train the CNN (off: frozen features).")
flags.DEFINE_integer("image_size", 128, "Side of the square crop the captioner sees (small: a "
                     "multiple of 16, resnet50: of 32; 224 gives 7x7 ResNet-50 cells).")
flags.DEFINE_integer("feature_size", 256, "Size of the projected annotation vectors.")
flags.DEFINE_integer("embedding_size", 128, "Word embedding size.")
flags.DEFINE_integer("hidden_size", 256, "LSTM units.")
flags.DEFINE_integer("attention_size", 128, "Attention MLP size.")
flags.DEFINE_float("dropout", 0.3, "Dropout before the output layer.")
flags.DEFINE_integer("steps", 3000, "Total training steps (a resumed run continues to this).")
flags.DEFINE_integer("batch_size", 32, "Captions per step (global).")
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.")
flags.DEFINE_float("attention_reg", 1.0, "Weight of the doubly stochastic attention regulariser.")
flags.DEFINE_float("word_dropout", 0.0, "Share of teacher-forced input words replaced by "
                   "[PAD], so the decoder has to look at the image more.")
flags.DEFINE_float("clip_norm", 5.0, "Global gradient norm clip.")
flags.DEFINE_bool("flip", True, "Random horizontal flips of the crops.")
flags.DEFINE_integer("checkpoint_every", 500, "Steps between checkpoints.")
flags.DEFINE_integer("log_every", 50, "Steps between TensorBoard scalars.")
flags.DEFINE_integer("picture_every", 500, "Steps between alignment pictures in TensorBoard.")
flags.DEFINE_enum("strategy", "one_device", list(config_lib.STRATEGIES), "tf.distribute strategy.")
flags.DEFINE_integer("seed", 0, "Seed of the initial weights and the batches.")
flags.mark_flags_as_required(["input", "output_dir"])


def _experiment() -> config_lib.ExperimentConfig:
  from kaleido.alignment import captioner_dir  # pylint: disable=g-import-not-at-top
  from kaleido.alignment import inputs  # pylint: disable=g-import-not-at-top
  manifest = inputs.load_prepared(FLAGS.input)
  captioner = captioner_dir.captioner_config_for(
      manifest, FLAGS.input, cnn=FLAGS.cnn, image_size=FLAGS.image_size,
      feature_size=FLAGS.feature_size, embedding_size=FLAGS.embedding_size,
      hidden_size=FLAGS.hidden_size, attention_size=FLAGS.attention_size,
      dropout=FLAGS.dropout, cnn_trainable=FLAGS.cnn_trainable)
  for folder in filter(None, (FLAGS.input, FLAGS.validation)):
    captioner_dir.check_matches_data(captioner, FLAGS.output_dir,
                                     inputs.load_prepared(folder).vocab_hash,
                                     manifest.patch_size, folder)
  return config_lib.validate(config_lib.ExperimentConfig(
      task=config_lib.TaskConfig(
          name=config_lib.CAPTIONER, captioner=config_lib.CaptionerTrainingConfig(
              attention_reg=FLAGS.attention_reg, word_dropout=FLAGS.word_dropout,
              flip=FLAGS.flip)),
      data=config_lib.DataConfig(train_data=FLAGS.input, eval_data=FLAGS.validation,
                                 vocab_file=manifest.vocab_file, vocab_hash=manifest.vocab_hash,
                                 max_seq_length=manifest.max_seq_length,
                                 patch_size=manifest.patch_size),
      model=captioner,
      init=config_lib.InitConfig(patch_cnn_weights=FLAGS.cnn_weights),
      optimizer=config_lib.OptimizerConfig(name="adam", learning_rate=FLAGS.learning_rate,
                                           schedule="constant", warmup_steps=0,
                                           clip_norm=FLAGS.clip_norm),
      training=config_lib.TrainingConfig(
          model_dir=FLAGS.output_dir, train_steps=FLAGS.steps, batch_size=FLAGS.batch_size,
          strategy=FLAGS.strategy, seed=FLAGS.seed, checkpoint_every=FLAGS.checkpoint_every,
          summary_every=FLAGS.log_every, image_summary_every=FLAGS.picture_every),
      evaluation=config_lib.EvaluationConfig(
          eval_every=FLAGS.checkpoint_every if FLAGS.validation else 0)))


@cli.user_errors_as_messages
def main(argv: list[str]) -> None:
  if len(argv) > 1:
    raise errors.KaleidoError(f"Unexpected arguments {argv[1:]}; pass everything as --flags.")
  if FLAGS.cnn_weights and not os.path.isfile(FLAGS.cnn_weights):
    raise errors.KaleidoError(f"--cnn_weights {FLAGS.cnn_weights!r} does not exist; "
                              "pass a Keras .h5 weights file or leave it empty.")
  from kaleido.training import distribute  # pylint: disable=g-import-not-at-top
  strategy = distribute.create_strategy(FLAGS.strategy)
  from kaleido.alignment import captioner_dir  # pylint: disable=g-import-not-at-top
  from kaleido.tasks import alignment_captioner  # pylint: disable=g-import-not-at-top
  from kaleido.training import trainer  # pylint: disable=g-import-not-at-top
  config = _experiment()
  captioner_dir.copy_vocab(FLAGS.output_dir, config.data.vocab_file)
  result = trainer.Trainer(config, alignment_captioner.CaptionerTask(config), strategy).run()
  trainer.stop_if_interrupted(result)
  summary = ", ".join(f"{k} {v:.4g}" for k, v in sorted(result.losses.items()))
  print(f"trained to step {result.step}{'; ' + summary if summary else ''}; checkpoint "
        f"{FLAGS.output_dir}")
  if result.validation:
    print("validation: " + ", ".join(f"{k} {v:.4g}" for k, v in sorted(
        result.validation.items())))


if __name__ == "__main__":
  app.run(main)
