r"""A pre-training run's ITM accuracy on held-out pairs with the paper's random negatives.

  python tools/pretraining_itm.py --run runs/demo_pretrain [--eval_data FOLDER]

However the run trained ITM (the paper's masked pass over pipeline pairs, --itm_unmasked, or
in-step groups of --negatives_per_positive), this scores its last checkpoint the same way: the
held-out batches of train.py's evaluation (the same seed, masks and transforms), half of each
batch's pairs given a random other product's image (the paper's pre-training draw), and ITM
read where the run's ITM head was trained: on the masked pass, or on the restored text and
patches for --itm_unmasked and in-step groups. Prints the accuracy over the pairs and every
other held-out figure.
"""

from __future__ import annotations

import dataclasses
import tempfile

from absl import app
from absl import flags

from kaleido import errors
from kaleido.utils import cli

_RUN = flags.DEFINE_string("run", None, "A pre-training --model_dir of train.py.")
_EVAL_DATA = flags.DEFINE_string(
    "eval_data", "", "A prepared folder of held-out products, tokenised with the run's vocabulary"
    " (default: the one the run was evaluated on while it trained, its --eval_data).")
_BATCHES = flags.DEFINE_integer("batches", 10, "Held-out batches (of the run's batch size).")
_OUTPUT_JSON = flags.DEFINE_string("output_json", "", "Also write the figures here as JSON.")


def paper_pairs_config(run, eval_data: str, model_dir: str, batches: int):
  """`run`'s config scoring ITM on the paper's random pairs of `eval_data`."""
  from kaleido import config as config_lib  # pylint: disable=g-import-not-at-top
  pretraining = run.task.pretraining
  restored = pretraining.itm_unmasked or pretraining.itm_negatives_per_positive > 0
  pairs = dataclasses.replace(pretraining, itm_negatives_per_positive=0, itm_loss="binary",
                              itm_negative_fraction=0.5, hard_negatives=False,
                              itm_unmasked=restored)
  return config_lib.validate(dataclasses.replace(
      run, task=dataclasses.replace(run.task, pretraining=pairs),
      data=dataclasses.replace(run.data, eval_data=eval_data),
      training=dataclasses.replace(run.training, model_dir=model_dir,
                                   strategy="one_device"),
      evaluation=dataclasses.replace(run.evaluation, eval_steps=batches)))


def held_out_folder(run, eval_data: str) -> str:
  """`eval_data`, else the folder `run` was evaluated on while it trained; a KaleidoError when
  there is none or when it was tokenised with another vocabulary than the run's."""
  from kaleido.evaluation import runs  # pylint: disable=g-import-not-at-top
  from kaleido.records import manifest as manifest_lib  # pylint: disable=g-import-not-at-top
  folder = eval_data or run.data.eval_data
  if not folder:
    raise errors.KaleidoError(f"The run in {run.training.model_dir!r} was trained without "
                              "--eval_data; pass --eval_data=FOLDER, held-out data prepared with "
                              "its vocabulary.")
  runs.check_vocabulary(run, manifest_lib.load(folder), folder)
  return folder


@cli.user_errors_as_messages
def main(argv):
  del argv
  from kaleido import config as config_lib  # pylint: disable=g-import-not-at-top
  from kaleido.tasks import factory  # pylint: disable=g-import-not-at-top
  from kaleido.training import trainer as trainer_lib  # pylint: disable=g-import-not-at-top
  from kaleido.utils import restoring  # pylint: disable=g-import-not-at-top
  run = config_lib.load_pretraining_run(_RUN.value, "run")
  eval_data = held_out_folder(run, _EVAL_DATA.value)
  with tempfile.TemporaryDirectory() as scratch:
    config = paper_pairs_config(run, eval_data, scratch, _BATCHES.value)
    task = factory.create_task(config)
    trainer = trainer_lib.Trainer(config, task)
    checkpoint = restoring.latest_checkpoint(_RUN.value)
    restoring.restore(checkpoint, {"model": trainer.model},
                      "pass a pre-training run of this project")
    task.prepare_inputs(trainer.model)
    values = trainer.evaluate()
  pass_read = "restored" if config.task.pretraining.itm_unmasked else "masked"
  print(f"{checkpoint}: ITM accuracy {100 * values['itm_accuracy']:.2f}% on "
        f"{_BATCHES.value} batches of {eval_data} (random negatives, half of the pairs; "
        f"the {pass_read} pass)")
  print(", ".join(f"{name}={value:.4f}" for name, value in sorted(values.items())))
  if _OUTPUT_JSON.value:
    from kaleido.utils import files  # pylint: disable=g-import-not-at-top
    files.write_json(_OUTPUT_JSON.value, {
        "run": _RUN.value, "checkpoint": checkpoint, "eval_data": eval_data,
        "batches": _BATCHES.value, "pass": pass_read, "values": values})


if __name__ == "__main__":
  flags.mark_flags_as_required(["run"])
  app.run(main)
