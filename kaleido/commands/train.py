r"""Pre-trains Kaleido-BERT (paper sections 3.4-3.6, Eq. 8) or fine-tunes it (section 4.2).

  python train.py --flagfile=configs/demo_pretrain.flags
  python train.py --flagfile=configs/demo_retrieval.flags    # --task=retrieval
  python train.py --flagfile=configs/pretrain_fashiongen.flags --train_data=prepared/train

--train_data is a folder written by data/prepare.py, or `demo` for the embedded demo catalog
(generated and prepared under --demo_dir on first use). A rerun with the same --model_dir resumes
from its latest checkpoint. Fine-tuning (--task=retrieval|category|subcategory|caption) starts from
--init_checkpoint, a pre-training --model_dir, and takes the model sizes from it. The flags
(kaleido/config_flags.py: every default is the config's) become one experiment config, completed
from the data by kaleido.experiment and saved whole as MODEL_DIR/run_config.json.
"""

from absl import flags
from absl import logging

from kaleido import config as config_lib
from kaleido import config_flags
from kaleido.utils import cli

config_flags.define_flags()


@cli.user_errors_as_messages
def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # TensorFlow's checkpoint INFO lines are noise here
  config = config_lib.validate(config_flags.config_from_flags(), before_data=True)
  # Multi-worker strategies configure the runtime, so they come before any other TensorFlow work.
  from kaleido.training import distribute  # pylint: disable=g-import-not-at-top
  strategy = distribute.create_strategy(config.training.strategy, config.training.tpu_address)
  from kaleido import experiment  # pylint: disable=g-import-not-at-top
  from kaleido.training import trainer  # pylint: disable=g-import-not-at-top
  config = experiment.complete(config, strategy)
  result = experiment.train(config, strategy)
  if result.losses:  # none when the checkpoint was already at --train_steps
    losses = ", ".join(f"{k}={v:.4f}" for k, v in sorted(result.losses.items()))
    print(f"Step {result.step}: {losses}")
  if result.validation:
    validation = ", ".join(f"{k}={v:.4f}" for k, v in sorted(result.validation.items()))
    print(f"Validation ({config.data.eval_data}): {validation}")
  trainer.stop_if_interrupted(result)


def run() -> None:
  """The `kaleido-train` command."""
  flags.mark_flags_as_required(["model_dir"])
  cli.run(main)


if __name__ == "__main__":
  run()
