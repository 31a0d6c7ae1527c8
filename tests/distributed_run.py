r"""Runs a few pre-training steps of a tiny model under a strategy; prints the losses as JSON.

Used by tests/test_training.py in fresh processes, because logical CPU devices and TF_CONFIG must
be set before TensorFlow starts:

  python -m tests.distributed_run --data DIR --model_dir DIR --strategy mirrored --logical_cpus 2
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
  parser.add_argument("--eval_every", type=int, default=0)  # on --data itself
  parser.add_argument("--keep_best", default="")
  args = parser.parse_args()

  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  cpu = tf.config.list_physical_devices("CPU")[0]
  if args.logical_cpus > 1:
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * args.logical_cpus)

  from kaleido.training import distribute  # pylint: disable=g-import-not-at-top
  strategy = distribute.create_strategy(args.strategy)  # before any other TensorFlow work

  from kaleido.tasks import factory  # pylint: disable=g-import-not-at-top
  from kaleido.training import trainer  # pylint: disable=g-import-not-at-top
  from tests import catalogs  # pylint: disable=g-import-not-at-top

  config = catalogs.tiny_experiment(
      args.data, args.model_dir, train_steps=args.steps, batch_size=args.batch_size,
      training={"strategy": args.strategy, "input_mode": args.input_mode,
                "checkpoint_every": args.checkpoint_every,
                "mixed_precision": args.mixed_precision, "jit_compile": args.jit_compile,
                "summary_every": 1, "image_summary_every": 1000},
      eval_data=args.data if args.eval_every else "",
      evaluation={"eval_every": args.eval_every, "eval_steps": 2, "keep_best": args.keep_best})
  result = trainer.Trainer(config, factory.create_task(config), strategy).run()
  print(json.dumps({"step": result.step, "losses": result.losses,
                    "interrupted": result.interrupted, "validation": result.validation}))


if __name__ == "__main__":
  main()
