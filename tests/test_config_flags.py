"""The commands' flags come from their configs: one default per setting (train.py's from
ExperimentConfig, evaluate.py's from EvaluationRequest, data/prepare.py's from PrepareConfig), and
the flags give the config."""

import dataclasses

from absl import flags
import pytest

from kaleido import config as config_lib
from kaleido import config_flags
from kaleido import errors
from kaleido.evaluation import request as request_lib
from kaleido.records import prepare_config


@pytest.fixture(name="flag_values")
def fixture_flag_values():
  flag_values = flags.FlagValues()
  config_flags.define_flags(flag_values)
  return flag_values


def _field(path: str) -> dataclasses.Field:
  """The dataclass field at dotted `path` of ExperimentConfig."""
  *parents, name = path.split(".")
  owner = config_flags.field_value(config_lib.ExperimentConfig(), ".".join(parents)) if parents \
      else config_lib.ExperimentConfig()
  return {field.name: field for field in dataclasses.fields(owner)}[name]


def test_every_flag_defaults_to_its_config_fields_default(flag_values):
  flag_values(["train.py"])
  default = config_lib.ExperimentConfig()
  for setting in config_flags.SETTINGS:
    flag = flag_values[setting.flag]
    for path in setting.fields:
      field_default = config_flags.field_value(default, path)
      if setting.required:
        assert flag.default is None and field_default == ""
      elif setting.form:
        assert setting.form.to_field(flag.default) == field_default, setting.flag
      else:
        assert flag.default == field_default and type(flag.default) is type(field_default), (
            setting.flag)
      assert _field(path).type == type(field_default).__name__ or setting.form, path
  # The flags with no value given rebuild the default config (model_dir aside).
  assert config_flags.config_from_flags(flag_values) == default


def test_flags_set_their_fields_and_lists_are_parsed(flag_values):
  flag_values(["train.py", "--model_dir=/tmp/run", "--itm_loss=listwise",
               "--negatives_per_positive=3", "--dropout_rate=0.2", "--kaleido_levels=5",
               "--tasks=amlm,itm", "--loss_weights=itm=5", "--patch_cnn_weights=catalog",
               "--demo_dir=/tmp/demo", "--catalog_patch_cnn_steps=7"])
  config = config_flags.config_from_flags(flag_values)
  pretraining, finetune = config.task.pretraining, config.task.finetune
  assert (pretraining.itm_loss, finetune.itm_loss) == ("listwise", "listwise")
  assert (pretraining.itm_negatives_per_positive, finetune.negatives_per_positive) == (3, 3)
  assert (config.model.dropout_rate, config.model.attention_dropout_rate) == (0.2, 0.2)
  assert config.model.kaleido_levels == (5,) and pretraining.enabled == ("amlm", "itm")
  assert dict(pretraining.weights)["itm"] == 5.0 and dict(pretraining.weights)["rr"] == 1.0
  assert (config.init.patch_cnn_weights, config.init.catalog_patch_cnn_steps) == ("catalog", 7)
  assert (config.training.model_dir, config.data.demo_dir) == ("/tmp/run", "/tmp/demo")


@pytest.mark.parametrize("argv, message", [(["--kaleido_levels=a"], "numbers of levels"),
                                           (["--loss_weights=itm"], "name=value")])
def test_bad_list_flags_are_one_sentence(flag_values, argv, message):
  flag_values(["train.py", *argv])
  with pytest.raises(errors.KaleidoError, match=message):
    config_flags.config_from_flags(flag_values)


@pytest.mark.parametrize("settings, defaults, argument, path, value", [
    (request_lib.SETTINGS, request_lib.EvaluationRequest(), "--num_draws=3", "num_draws", 3),
    (prepare_config.SETTINGS, prepare_config.DEFAULTS, "--foreground=unet",
     "patch.foreground.method", "unet")], ids=["evaluate", "prepare"])
def test_the_other_commands_flags_default_to_their_configs(settings, defaults, argument, path,
                                                           value):
  flag_values = flags.FlagValues()
  config_flags.define(settings, defaults, flag_values)
  flag_values(["command"])
  for setting in settings:
    if not setting.required:
      assert flag_values[setting.flag].default == config_flags.field_value(
          defaults, setting.fields[0]), setting.flag
  flag_values(["command", argument])
  parsed = config_flags.parse(settings, defaults, flag_values)
  assert config_flags.field_value(parsed, path) == value
  assert config_flags.field_value(defaults, path) != value
