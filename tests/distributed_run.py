r"""Runs a few pre-training steps of a tiny model under a strategy; prints the losses as JSON.

Used by tests/test_training.py in fresh processes, because logical CPU devices and TF_CONFIG must
be set before TensorFlow starts:

  python tests/distributed_run.py --data DIR --model_dir DIR --strategy mirrored --logical_cpus 2
"""

import argparse
import json


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--data", required=True)
  parser.add_argument("--model_dir", required=True)
  parser.add_argument("--strategy", default="one_device")
  parser.add_argument("--logical_cpus", type=int, default=1)
  parser.add_argument("--steps", type=int, default=3)
  parser.add_argument("--batch_size", type=int, default=8)
  parser.add_argument("--input_mode", default="global")
  parser.add_argument("--checkpoint_every", type=int, default=1000)
  parser.add_argument("--mixed_precision", default="none")
  parser.add_argument("--jit_compile", action="store_true")
  args = parser.parse_args()

  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  cpu = tf.config.list_physical_devices("CPU")[0]
  if args.logical_cpus > 1:
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * args.logical_cpus)

  from kaleido.training import distribute  # pylint: disable=g-import-not-at-top
  strategy = distribute.create_strategy(args.strategy)  # before any other TensorFlow work

  from kaleido import config as config_lib  # pylint: disable=g-import-not-at-top
  from kaleido.pretraining import inputs  # pylint: disable=g-import-not-at-top
  from kaleido.records import manifest as manifest_lib  # pylint: disable=g-import-not-at-top
  from kaleido.text import tokenizer as tokenizer_lib  # pylint: disable=g-import-not-at-top
  from kaleido.training import trainer  # pylint: disable=g-import-not-at-top

  manifest = manifest_lib.load(args.data)
  tokenizer = tokenizer_lib.KaleidoTokenizer(manifest.vocab_file, manifest.max_seq_length)
  config = config_lib.KaleidoConfig(
      model=config_lib.ModelConfig(
          vocab_size=tokenizer.vocab_size, hidden_size=32, num_layers=2, num_heads=2,
          intermediate_size=64, max_seq_length=manifest.max_seq_length,
          patch_size=manifest.patch_size, backbone="small", dropout_rate=0.0,
          attention_dropout_rate=0.0),
      task=config_lib.TaskConfig(),
      train=config_lib.TrainConfig(
          model_dir=args.model_dir, train_data=args.data, train_steps=args.steps,
          batch_size=args.batch_size, strategy=args.strategy, input_mode=args.input_mode,
          learning_rate=1e-3, warmup_steps=0, checkpoint_every=args.checkpoint_every,
          mixed_precision=args.mixed_precision, jit_compile=args.jit_compile,
          summary_every=1, image_summary_every=1000))
  result = trainer.Trainer(config, inputs.special_ids(tokenizer), strategy).run()
  print(json.dumps({"step": result.step, "losses": result.losses,
                    "interrupted": result.interrupted}))


if __name__ == "__main__":
  main()
