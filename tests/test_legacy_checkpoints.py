"""Checkpoints written before the backbone existed (functional models) keep loading: the legacy
layout of each task model holds exactly the variables such a checkpoint holds.

tests/fixtures/legacy_checkpoint_paths.json lists the variable paths of checkpoints the earlier
functional models wrote (a tiny pre-training model and its retrieval, category and caption
fine-tuning models, H=16, L=1, small backbone), recorded with that code."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from kaleido import config as config_lib
from kaleido.model import kaleido_bert
from kaleido.utils import restoring

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures",
                       "legacy_checkpoint_paths.json")
MODEL = config_lib.KaleidoBertConfig(vocab_size=40, hidden_size=16, num_layers=1, num_heads=2,
                                     intermediate_size=32, patch_size=16, backbone="small")


def _model(task: str):
  if task == config_lib.PRETRAIN:
    return kaleido_bert.build_pretrainer(MODEL)
  return kaleido_bert.build_finetune_model(config_lib.TaskConfig(
      name=task, finetune=config_lib.FinetuneConfig(num_classes=3)), MODEL)


def _paths(prefix: str) -> list[str]:
  return sorted(name for name, _ in tf.train.list_variables(prefix) if name.startswith("model/"))


@pytest.mark.parametrize("task", ["pretrain", "retrieval", "category", "caption"])
def test_the_legacy_layout_holds_the_variables_of_an_old_checkpoint(task, tmp_path):
  with open(FIXTURE, encoding="utf-8") as f:
    expected = json.load(f)[task]
  model = _model(task)
  prefix = tf.train.Checkpoint(**kaleido_bert.legacy_objects(model)).write(str(tmp_path / "c"))
  assert _paths(prefix) == expected
  assert kaleido_bert.is_legacy_checkpoint(prefix)


def test_an_old_pretraining_checkpoint_starts_a_fine_tuning_model(tmp_path):
  pretrainer = _model(config_lib.PRETRAIN)
  for variable in pretrainer.weights:
    variable.assign(variable + 0.25)
  prefix = tf.train.Checkpoint(**kaleido_bert.legacy_objects(pretrainer)).save(
      str(tmp_path / "old"))  # as the trainer saved
  matcher = _model("retrieval")
  restoring.restore(prefix, kaleido_bert.legacy_pretraining_objects(matcher), "mismatch")
  np.testing.assert_array_equal(matcher.itm.kernel.numpy(), pretrainer.heads.itm.kernel.numpy())
  for mine, theirs in zip(matcher.backbone.weights, pretrainer.backbone.weights):
    np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
