"""Checkpoints that cannot poison or stop a run: no non-finite save, damaged newest checkpoints
moved aside for the newest that reads, unfinished saves cleaned."""

import dataclasses
import glob
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from kaleido import errors
from kaleido.tasks import factory
from kaleido.training import trainer as trainer_lib
from kaleido.utils import restoring
from tests import catalogs


@pytest.fixture(scope="module", name="data")
def fixture_data(tmp_path_factory):
  return catalogs.prepared_demo(str(tmp_path_factory.mktemp("recovery_data")), 8, seed=2)


@pytest.fixture(scope="module", name="trained")
def fixture_trained(data, tmp_path_factory):
  """A model_dir with ckpt-1 and ckpt-2 of a tiny pre-training run."""
  model_dir = str(tmp_path_factory.mktemp("trained"))
  config = catalogs.tiny_experiment(data, model_dir, training={"checkpoint_every": 1})
  trainer_lib.Trainer(config, factory.create_task(config)).run()
  return config


def _copy(config, destination, train_steps=2):
  shutil.copytree(config.training.model_dir, destination)
  return dataclasses.replace(config, training=dataclasses.replace(
      config.training, model_dir=str(destination), train_steps=train_steps))


def _damage(prefix, kind):
  data = glob.glob(prefix + ".data-*")[0]
  contents = bytearray(open(data, "rb").read())
  if kind == "truncated_data":
    open(data, "wb").write(bytes(contents[:len(contents) // 2]))
  elif kind == "empty_data":
    open(data, "wb").write(b"")
  elif kind == "overwritten_data":
    contents[len(contents) // 3:len(contents) // 3 + 64] = b"\x7f" * 64
    open(data, "wb").write(bytes(contents))
  elif kind == "truncated_index":
    index = open(prefix + ".index", "rb").read()
    open(prefix + ".index", "wb").write(index[:len(index) // 2])


@pytest.mark.parametrize("kind", ["truncated_data", "empty_data", "overwritten_data",
                                  "truncated_index"])
def test_a_damaged_newest_checkpoint_is_moved_aside_for_the_older_one(trained, tmp_path, kind,
                                                                      capfd):
  config = _copy(trained, tmp_path / "run")
  checkpoints = os.path.join(config.training.model_dir, "checkpoints")
  _damage(os.path.join(checkpoints, "ckpt-2"), kind)
  trainer = trainer_lib.Trainer(config, factory.create_task(config))
  assert trainer._restore() == 1  # pylint: disable=protected-access
  err = capfd.readouterr().err
  assert f"The checkpoint {checkpoints}/ckpt-2 is damaged" in err and "moved to" in err
  assert sorted(os.listdir(os.path.join(checkpoints, restoring.DAMAGED_DIR)))[-1].startswith(
      "ckpt-2.")  # kept, not deleted
  assert trainer.manager.latest_checkpoint.endswith("ckpt-1")


@pytest.mark.parametrize("garbage", [b"\xff\xfe\x00garbage", b"\0" * 40,
                                     b'model_checkpoint_path: "ckpt-'])
def test_a_damaged_checkpoint_list_is_rebuilt_from_the_files(trained, tmp_path, garbage, capfd):
  config = _copy(trained, tmp_path / "run")
  checkpoints = os.path.join(config.training.model_dir, "checkpoints")
  with open(os.path.join(checkpoints, restoring.STATE_FILE), "wb") as f:
    f.write(garbage)
  trainer = trainer_lib.Trainer(config, factory.create_task(config))
  assert trainer._restore() == 2  # pylint: disable=protected-access
  assert "was damaged" in capfd.readouterr().err
  assert trainer.manager.latest_checkpoint.endswith("ckpt-2")


def test_training_goes_on_from_the_older_checkpoint_and_unfinished_saves_go(trained, tmp_path,
                                                                           capfd):
  config = _copy(trained, tmp_path / "run", train_steps=3)
  checkpoints = os.path.join(config.training.model_dir, "checkpoints")
  _damage(os.path.join(checkpoints, "ckpt-2"), "truncated_data")
  os.makedirs(os.path.join(checkpoints, "ckpt-3_temp"))  # left by a kill during a save
  result = trainer_lib.Trainer(config, factory.create_task(config)).run()
  assert result.step == 3 and "Resumed from" in capfd.readouterr().err
  assert not glob.glob(os.path.join(checkpoints, "*_temp"))
  assert restoring.damage(os.path.join(checkpoints, "ckpt-3")) is None


def test_evaluation_and_init_fall_back_and_a_named_damaged_checkpoint_is_one_sentence(
    trained, tmp_path):
  config = _copy(trained, tmp_path / "run")
  model_dir = config.training.model_dir
  _damage(os.path.join(model_dir, "checkpoints", "ckpt-2"), "empty_data")
  with pytest.raises(errors.KaleidoError, match=r"ckpt-2' is damaged .*pass its model_dir"):
    restoring.latest_checkpoint(os.path.join(model_dir, "checkpoints", "ckpt-2"))
  assert restoring.latest_checkpoint(model_dir).endswith("ckpt-1")


def test_no_checkpoint_with_a_non_finite_weight_is_written(trained, tmp_path):
  config = _copy(trained, tmp_path / "run", train_steps=3)
  trainer = trainer_lib.Trainer(config, factory.create_task(config))
  trainer._restore()  # pylint: disable=protected-access
  variable = trainer.model.trainable_variables[0]
  variable.assign(tf.fill(variable.shape, np.float32(np.nan)))
  with pytest.raises(trainer_lib.TrainingError, match=r"non-finite at step 3.*ckpt-2.*finite"):
    trainer._save(3, {"total": float("nan")})  # pylint: disable=protected-access
  assert not glob.glob(os.path.join(config.training.model_dir, "checkpoints", "ckpt-3*"))


def test_a_model_dir_that_is_a_file_and_mirrored_without_a_gpu(trained, tmp_path, capfd):
  from kaleido import config as config_lib  # pylint: disable=g-import-not-at-top
  from kaleido.training import distribute  # pylint: disable=g-import-not-at-top
  (tmp_path / "a_file").write_text("x")
  with pytest.raises(config_lib.ConfigError, match=r"--model_dir=.*a_file' is a file; pass a "
                     "folder"):
    config_lib.validate(dataclasses.replace(trained, training=dataclasses.replace(
        trained.training, model_dir=str(tmp_path / "a_file"))))
  strategy = distribute.create_strategy("mirrored")
  assert strategy.num_replicas_in_sync == 1
  assert "--strategy=mirrored found no GPU on this machine: training on one replica" in (
      capfd.readouterr().err)
