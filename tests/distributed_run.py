r"""A few pre-training steps of a tiny model under a strategy; prints the losses as JSON.

tests/test_training.py runs it in fresh processes where logical CPU devices or TF_CONFIG must be
set before TensorFlow starts:

  python -m tests.distributed_run --data DIR --model_dir DIR --strategy mirrored --logical_cpus 2

and calls `train` in its own process for the one-device variants (XLA, mixed precision).
"""

import argparse
import json


def train(data: str, model_dir: str, strategy=None, strategy_name: str = "one_device",
          steps: int = 3, batch_size: int = 8, eval_every: int = 0, keep_best: str = "",
          data_options: dict | None = None, dropout: float = 0.0, task: str = "pretrain",
          finetune: dict | None = None, pretraining: dict | None = None, **training) -> dict:
  """Trains the tiny experiment of `task`; {"step", "losses", "interrupted", "validation"}.
  `training` overrides TrainingConfig fields (input_mode, checkpoint_every, mixed_precision,
  jit_compile), `data_options` DataConfig fields (patch_features), `finetune` and `pretraining`
  FinetuneConfig and PretrainingConfig fields."""
  from kaleido.tasks import factory  # pylint: disable=g-import-not-at-top
  from kaleido.training import trainer  # pylint: disable=g-import-not-at-top
  from tests import catalogs  # pylint: disable=g-import-not-at-top
  config = catalogs.tiny_experiment(
      data, model_dir, train_steps=steps, batch_size=batch_size,
      training={"strategy": strategy_name, "checkpoint_every": 1000, "summary_every": 1,
                "image_summary_every": 1000, **training},
      eval_data=data if eval_every else "",
      evaluation={"eval_every": eval_every, "eval_steps": 2, "keep_best": keep_best},
      data_options=data_options, dropout=dropout, task=task, finetune=finetune,
      pretraining=pretraining)
  result = trainer.Trainer(config, factory.create_task(config), strategy).run()
  return {"step": result.step, "losses": result.losses, "interrupted": result.interrupted,
          "validation": result.validation}


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--data", required=True)
  parser.add_argument("--model_dir", required=True)
  parser.add_argument("--strategy", default="one_device")
  parser.add_argument("--logical_cpus", type=int, default=1)
  parser.add_argument("--steps", type=int, default=3)
  parser.add_argument("--batch_size", type=int, default=8)
  parser.add_argument("--input_mode", default="global")
  parser.add_argument("--eval_every", type=int, default=0)  # on --data itself
  parser.add_argument("--keep_best", default="")
  parser.add_argument("--task", default="pretrain")
  parser.add_argument("--finetune", default="{}", help="FinetuneConfig fields as JSON")
  parser.add_argument("--pretraining", default="{}", help="PretrainingConfig fields as JSON")
  args = parser.parse_args()

  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  cpu = tf.config.list_physical_devices("CPU")[0]
  if args.logical_cpus > 1:
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * args.logical_cpus)

  from kaleido.training import distribute  # pylint: disable=g-import-not-at-top
  strategy = distribute.create_strategy(args.strategy)  # before any other TensorFlow work
  print(json.dumps(train(args.data, args.model_dir, strategy, args.strategy, args.steps,
                         args.batch_size, args.eval_every, args.keep_best, task=args.task,
                         finetune=json.loads(args.finetune),
                         pretraining=json.loads(args.pretraining), input_mode=args.input_mode)))


if __name__ == "__main__":
  main()
