"""Every train.py flag file in configs/ parses and passes config validation, with its recipe."""

import json
import os
import subprocess
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Parses each flag file with train.py's flags and prints the validated config as JSON lines.
_VALIDATE = """
import json, sys
from absl import flags
import train
from kaleido import config as config_lib
from kaleido import config_flags
for path in sys.argv[1:]:
  flags.FLAGS.unparse_flags()
  flags.FLAGS(["train.py", "--flagfile=" + path])
  config = config_flags.config_from_flags()
  print(json.dumps(config_lib.to_json(config_lib.validate(config, before_data=True))))
"""


def _validated_configs() -> dict[str, dict]:
  names = sorted(n for n in os.listdir(os.path.join(REPO_ROOT, "configs"))
                 if n.endswith(".flags") and not n.startswith("aag_"))  # aag_*: data/train_aag.py
  result = subprocess.run([sys.executable, "-c", _VALIDATE, *(f"configs/{n}" for n in names)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False)
  assert result.returncode == 0, result.stderr[-2000:]
  return dict(zip(names, map(json.loads, result.stdout.splitlines())))


def test_flag_files_validate_and_hold_their_recipes():
  configs = _validated_configs()
  assert len(configs) >= 11
  bert = configs["demo_pretrain_bert.flags"]
  # Issue #34: MiniLM with every layer kept, ITM alone first, on the demo's pre-training recipe.
  assert bert["init"]["bert_init"] == "all-MiniLM-L6-v2"
  assert bert["init"]["bert_reinit_layers"] == 0 and bert["init"]["patch_norm_from_text"]
  assert bert["task"]["pretraining"]["matching_first_steps"] == 400
  assert bert["task"]["pretraining"]["itm_unmasked"]
  assert bert["optimizer"]["pretrained_lr_multiplier"] == 0.1
  assert bert["training"]["train_steps"] == configs["demo_pretrain.flags"]["training"]["train_steps"]
  # The random start's word-pretrained patch CNN: a 100-step one left CP at chance and the
  # captions naming the wrong garment (development CIDEr 75.4 against 100.8 with 800 steps).
  assert (bert["init"]["catalog_patch_cnn_steps"] ==
          configs["demo_pretrain.flags"]["init"]["catalog_patch_cnn_steps"] == 800)
  paper = configs["pretrain_fashiongen.flags"]
  assert paper["init"]["bert_reinit_layers"] == 0 and paper["training"]["batch_size"] == 256
  assert configs["demo_retrieval_bert.flags"]["optimizer"]["learning_rate"] == 1e-4
  # Issue #33: the demo pipeline's pre-training ranks ITM groups; the paper's Fashion-Gen files do not.
  matching = configs["demo_pretrain_matching.flags"]["task"]["pretraining"]
  assert (matching["itm_negatives_per_positive"], matching["itm_loss"]) == (3, "listwise")
  assert configs["demo_pretrain_matching.flags"]["training"]["train_steps"] == 2000
  quick = configs["demo_pretrain.flags"]["task"]["pretraining"]
  assert (quick["itm_negatives_per_positive"], quick["itm_loss"]) == (0, "binary")
  retrieval = configs["demo_retrieval.flags"]["task"]["finetune"]
  assert (retrieval["negatives_per_positive"], retrieval["itm_loss"], retrieval["mined_negatives"],
          retrieval["itc_weight"]) == (3, "listwise", True, 1.0)
  for name in ("pretrain_fashiongen.flags", "finetune_retrieval_fashiongen.flags"):
    fashiongen = configs[name]["task"]
    assert fashiongen["pretraining"]["itm_negatives_per_positive"] == 0
    assert fashiongen["finetune"]["negatives_per_positive"] == 0


def test_a_tool_that_reads_a_pretraining_run_refuses_another_tasks(tmp_path):
  from kaleido import config as config_lib  # pylint: disable=g-import-not-at-top
  import pytest  # pylint: disable=g-import-not-at-top
  for name in ("pretrain", "retrieval"):
    config_lib.save(config_lib.ExperimentConfig(
        task=config_lib.TaskConfig(name=name),
        training=config_lib.TrainingConfig(model_dir=str(tmp_path / name))))
  assert config_lib.load_pretraining_run(str(tmp_path / "pretrain"), "run").task.name == "pretrain"
  with pytest.raises(config_lib.ConfigError, match=r"--run=.* is a retrieval run; pass a "
                     "pre-training run"):
    config_lib.load_pretraining_run(str(tmp_path / "retrieval"), "run")


def test_a_run_written_before_the_patch_cnn_rename_is_refused_in_one_sentence(tmp_path):
  from kaleido import config as config_lib  # pylint: disable=g-import-not-at-top
  from kaleido.utils import files  # pylint: disable=g-import-not-at-top
  import pytest  # pylint: disable=g-import-not-at-top
  path = config_lib.save(config_lib.ExperimentConfig(
      training=config_lib.TrainingConfig(model_dir=str(tmp_path))))
  files.write_json(path, {**files.read_json(path), "format": "kaleido-experiment/2"})
  with pytest.raises(config_lib.ConfigError) as error:
    config_lib.load(str(tmp_path))
  assert str(error.value) == (
      f"{path!r} was written before the patch CNN's rename (kaleido-experiment/2), so the run's "
      "checkpoints use the old names; retrain the run, or use a checkout of the code from before "
      "that rename.")
