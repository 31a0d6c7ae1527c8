"""`run_config.json` in a model_dir: what was trained there, so later steps can rebuild the model.

Fine-tuning reads the pre-training run's model sizes from it, and evaluation reads the task, the
sizes, the label maps and the vocabulary hash of the fine-tuned run.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import tensorflow as tf

from kaleido import config as config_lib
from kaleido import errors
from kaleido.utils import files

RUN_CONFIG_NAME = "run_config.json"
FORMAT = "kaleido-run-config/1"


@dataclasses.dataclass(frozen=True)
class RunConfig:
  """The parts of a run that define its model and data."""
  task_name: str  # "pretrain" or a FINETUNE_TASKS name
  model: config_lib.ModelConfig
  finetune: config_lib.FinetuneConfig | None
  vocab_file: str
  vocab_hash: str
  label_names: tuple[str, ...] = ()  # category / subcategory names by class id


def model_dir_of(path: str) -> str:
  """A model_dir, or a checkpoint prefix inside its `checkpoints/` folder -> the model_dir."""
  if os.path.isdir(path):
    return path
  return os.path.dirname(os.path.dirname(os.path.abspath(path)))


def save(model_dir: str, run_config: RunConfig) -> None:
  payload: dict[str, Any] = {"format": FORMAT, **dataclasses.asdict(run_config)}
  files.write_json(os.path.join(model_dir, RUN_CONFIG_NAME), payload)


def load(path: str) -> RunConfig:
  """The run config of a model_dir (or of the model_dir holding checkpoint `path`)."""
  model_dir = model_dir_of(path)
  config_path = os.path.join(model_dir, RUN_CONFIG_NAME)
  if not os.path.isfile(config_path):
    raise errors.KaleidoError(
        f"{model_dir!r} has no {RUN_CONFIG_NAME}, so it is not a model_dir written by train.py; "
        "pass the --model_dir of a training run.")
  payload = files.read_json(config_path)
  if payload.get("format") != FORMAT:
    raise errors.KaleidoError(f"{config_path!r} is not a {FORMAT} file; re-run train.py.")
  finetune = payload.get("finetune")
  if finetune:  # runs from before retrieval_text existed were fine-tuned on the prepared text
    finetune.setdefault("retrieval_text", "description")
  try:
    return RunConfig(
        task_name=payload["task_name"],
        model=config_lib.ModelConfig(**payload["model"]),
        finetune=config_lib.FinetuneConfig(**finetune) if finetune else None,
        vocab_file=payload["vocab_file"], vocab_hash=payload["vocab_hash"],
        label_names=tuple(payload.get("label_names", ())))
  except (KeyError, TypeError) as error:
    raise errors.KaleidoError(
        f"{config_path!r} does not match this version of the code ({error}); re-run train.py."
    ) from error


def latest_checkpoint(path: str) -> str:
  """A checkpoint prefix, or the latest checkpoint of a model_dir; clear error when none."""
  if os.path.isdir(path):
    latest = tf.train.latest_checkpoint(os.path.join(path, "checkpoints"))
    if not latest:
      raise errors.KaleidoError(f"{path!r} holds no checkpoint yet; train it first with train.py.")
    return latest
  if not os.path.exists(path + ".index"):
    raise errors.KaleidoError(f"{path!r} is neither a model_dir nor a checkpoint prefix.")
  return path

