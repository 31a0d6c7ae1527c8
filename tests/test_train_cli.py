"""train.py as a user runs it: bad data paths, vocabularies and flags give one sentence; the NaN
guard stops training and keeps the last good checkpoint."""

import glob
import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from kaleido.records import manifest as manifest_lib
from kaleido.tasks import factory
from kaleido.text import vocab as vocab_lib
from kaleido.training import trainer as trainer_lib
from tests import catalogs

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module", name="data")
def fixture_data(tmp_path_factory):
  return catalogs.prepared_demo(str(tmp_path_factory.mktemp("train_cli")), 10, seed=4,
                                max_seq_length=24)


COMMON_FLAGS = ("--patch_cnn=small", "--hidden_size=32", "--num_layers=1", "--num_heads=2",
                "--intermediate_size=64", "--batch_size=4", "--train_steps=10", "--warmup_steps=0")


def _train(tmp_path, *flags, env=None):
  result = subprocess.run(
      [sys.executable, os.path.join(REPO_ROOT, "train.py"), f"--model_dir={tmp_path / 'run'}",
       *COMMON_FLAGS, *flags],
      capture_output=True, text=True, timeout=300, check=False, env={**os.environ, **(env or {})})
  assert "Traceback" not in result.stderr, result.stderr[-2000:]
  return result, _error_lines(result.stderr)


def _error_lines(stderr: str) -> list[str]:
  return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_missing_data_folder(tmp_path):
  result, errors = _train(tmp_path, f"--train_data={tmp_path / 'absent'}")
  assert result.returncode == 1 and len(errors) == 1
  assert "does not exist; create it with python data/prepare.py" in errors[0]


def _changed_vocabulary_copy(data: str, folder) -> str:
  """A copy of `data` whose manifest names a vocabulary changed since the data was prepared."""
  copy = str(folder / "prepared")
  shutil.copytree(data, copy)
  manifest = manifest_lib.load(copy)
  changed_vocab = str(folder / "vocab.txt")
  shutil.copy(manifest.vocab_file, changed_vocab)
  with open(changed_vocab, "a", encoding="utf-8") as f:
    f.write("extra\n")
  manifest.vocab_file = changed_vocab
  manifest_lib.save(copy, manifest)
  return copy


FLAG_ERRORS = {
    "--num_heads=3": "must be divisible by --num_heads=3",
    "--fusion_layer=1": "--fusion_layer=1 must be at least 0 and below --num_layers=1",
    "--tasks=itm,rr": "must include amlm",
    "--loss_weights=rr=": "is not name=value",
    "--train_steps=0": "must be at least 1",
    "--warmup_steps=50": "must be between 0 and --train_steps=10",
    "--matching_first_steps=10": "--matching_first_steps=10 must be between 0 and --train_steps",
    "--patch_cnn=resnet50": "has no --patch_cnn_weights",
    "--patch_norm_from_text": "copies the LayerNorm of a --bert_init checkpoint",
    "--strategy=tpu": "found no TPU",  # this machine has none
}


@pytest.fixture(scope="module", name="refused")
def fixture_refused(data, tmp_path_factory):
  """{case: the "error:" lines of train.py's main} for each bad flag of FLAG_ERRORS and for data
  prepared with another vocabulary, all in one process (tests/train_in_process.py)."""
  folder = tmp_path_factory.mktemp("refused")
  model_dir = f"--model_dir={folder / 'run'}"
  cases = {flag: [model_dir, *COMMON_FLAGS, f"--train_data={data}", flag] for flag in FLAG_ERRORS}
  cases["changed_vocabulary"] = [model_dir, *COMMON_FLAGS,
                                 f"--train_data={_changed_vocabulary_copy(data, folder)}"]
  result = subprocess.run(
      [sys.executable, "-m", "tests.train_in_process", json.dumps(list(cases.values()))],
      capture_output=True, text=True, timeout=300, check=False, cwd=REPO_ROOT)
  assert result.returncode == 0, result.stderr[-3000:]
  outcomes = json.loads(result.stdout.strip().splitlines()[-1])
  for outcome in outcomes:
    assert outcome["returncode"] == 1 and "Traceback" not in outcome["stderr"], outcome
  return {case: _error_lines(outcome["stderr"]) for case, outcome in zip(cases, outcomes)}


def test_vocabulary_changed_since_preparation(refused):
  errors = refused["changed_vocabulary"]
  assert len(errors) == 1 and "SHA-256 differs" in errors[0]


@pytest.mark.parametrize("flag", FLAG_ERRORS)
def test_inconsistent_flags(refused, flag):
  errors = refused[flag]
  assert len(errors) == 1 and FLAG_ERRORS[flag] in errors[0], errors


def test_task_subset_under_multi_worker_strategy(data, tmp_path):
  """A Table 4 ablation (disabled heads get no gradient) on a one-worker multi-worker cluster."""
  port = subprocess.run([sys.executable, "-c", "import socket; s = socket.socket(); "
                         "s.bind(('localhost', 0)); print(s.getsockname()[1])"],
                        capture_output=True, text=True, check=True).stdout.strip()
  tf_config = json.dumps({"cluster": {"worker": [f"localhost:{port}"]},
                          "task": {"type": "worker", "index": 0}})
  result, errors = _train(tmp_path, f"--train_data={data}", "--train_steps=2", "--warmup_steps=0",
                          "--tasks=amlm,itm", "--strategy=multi_worker_mirrored",
                          env={"TF_CONFIG": tf_config})
  assert result.returncode == 0 and not errors, result.stderr[-2000:]
  assert "Step 2:" in result.stdout and "amlm=" in result.stdout and "rr=" not in result.stdout


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(data, tmp_path, monkeypatch):
  config = catalogs.tiny_experiment(data, str(tmp_path), train_steps=10, num_layers=1,
                                    dropout=0.1, training={"checkpoint_every": 1})
  trainer = trainer_lib.Trainer(config, factory.create_task(config))
  real_step, calls = trainer._train_step, []

  def step_that_diverges(batch, stop_requested, phase):
    calls.append(1)
    values, stop = real_step(batch, stop_requested, phase)
    return ({**values, "total": math.nan} if len(calls) == 3 else values), stop

  monkeypatch.setattr(trainer, "_train_step", step_that_diverges)
  with pytest.raises(trainer_lib.TrainingError, match="became nan at step 3"):
    trainer.run()
  saved = sorted(os.path.basename(p) for p in glob.glob(str(tmp_path / "checkpoints" / "*.index")))
  assert saved == ["ckpt-1.index", "ckpt-2.index"]


def test_train_starts_from_bert_and_a_catalog_patch_cnn_and_reports_progress(data, tmp_path):
  """One train.py run: --bert_init with the data's vocabulary, --patch_cnn_weights=catalog, losses,
  rate and ETA reported; then a checkpoint of another vocabulary refused in one sentence."""
  from tests import test_bert_init as bert_tests  # pylint: disable=g-import-not-at-top
  vocab_file = manifest_lib.load(data).vocab_file
  vocab_size = len(vocab_lib.read_vocab(vocab_file))
  weights = bert_tests.tiny_hf_weights()
  rng = np.random.default_rng(1)
  hidden = bert_tests.TINY["hidden_size"]
  weights["bert.embeddings.word_embeddings.weight"] = rng.normal(
      0, 0.3, (vocab_size, hidden)).astype(np.float32)
  weights["cls.predictions.bias"] = np.zeros(vocab_size, np.float32)
  bert_dir = bert_tests.write_hf_dir(str(tmp_path / "bert"), weights,
                                     {**bert_tests.TINY, "vocab_size": vocab_size})
  shutil.copy(vocab_file, os.path.join(bert_dir, "vocab.txt"))
  result, errors = _train(tmp_path, f"--train_data={data}", f"--bert_init={bert_dir}",
                          "--train_steps=2", "--summary_every=1", "--patch_cnn_weights=catalog",
                          "--catalog_patch_cnn_steps=3")
  assert result.returncode == 0 and not errors, result.stderr[-2000:]
  assert "Initialised" in result.stderr and "from Hugging Face BERT" in result.stderr
  assert "Step 2:" in result.stdout and "total=" in result.stdout
  assert "ETA" in result.stderr  # progress with rate and ETA
  # --patch_cnn_weights=catalog pre-trained the patch CNN first and kept its weights in the run.
  assert "Patch CNN word prediction" in result.stderr
  assert os.path.isfile(tmp_path / "run" / "patch_cnn_words.h5")
  run = json.load(open(tmp_path / "run" / "run_config.json", encoding="utf-8"))
  assert (run["model"]["hidden_size"], run["model"]["hidden_act"]) == (hidden, "gelu")

  other = bert_tests.write_hf_dir(str(tmp_path / "other"), bert_tests.tiny_hf_weights())
  result, errors = _train(tmp_path / "second", f"--train_data={data}", f"--bert_init={other}",
                          "--train_steps=1")
  assert result.returncode == 1 and len(errors) == 1
  assert "re-run data/prepare.py --vocab_file=" in errors[0]


def test_a_finetune_prepares_demo_with_the_pretraining_runs_vocabulary(tmp_path):
  """--train_data=demo in a fine-tune follows --init_checkpoint's vocabulary: a pretrained-BERT
  start's gets its own prepared folders, the demo's own vocabulary the plain ones."""
  from kaleido import experiment  # pylint: disable=g-import-not-at-top
  demo_vocab = experiment._demo_vocab  # pylint: disable=protected-access
  from kaleido import config as config_lib  # pylint: disable=g-import-not-at-top
  from kaleido.demo import pipeline  # pylint: disable=g-import-not-at-top
  demo_dir = tmp_path / "demo"
  demo_dir.mkdir()
  (demo_dir / "vocab.txt").write_text("[PAD]\n[UNK]\nshirt\n", encoding="utf-8")
  (tmp_path / "bert").mkdir()
  (tmp_path / "bert" / "vocab.txt").write_text("[PAD]\n[UNK]\nshirt\ndress\n", encoding="utf-8")

  def finetune_of(vocab_file) -> config_lib.ExperimentConfig:
    run_dir = str(tmp_path / f"run_{os.path.basename(os.path.dirname(vocab_file))}")
    config_lib.save(config_lib.ExperimentConfig(
        data=config_lib.DataConfig(vocab_file=str(vocab_file)),
        training=config_lib.TrainingConfig(model_dir=run_dir)))
    return config_lib.ExperimentConfig(init=config_lib.InitConfig(init_checkpoint=run_dir))

  bert_start = demo_vocab(finetune_of(tmp_path / "bert" / "vocab.txt"), None)
  assert bert_start == str(tmp_path / "bert" / "vocab.txt")
  assert "prepared-vocab-" in pipeline.demo_paths(str(demo_dir), bert_start).train_dir
  demo_start = demo_vocab(finetune_of(demo_dir / "vocab.txt"), None)
  assert pipeline.demo_paths(str(demo_dir), demo_start).train_dir == str(
      demo_dir / "prepared" / "train")
  assert demo_vocab(config_lib.ExperimentConfig(), None) == ""


def test_a_finetune_refuses_model_flags_its_init_run_would_override(tmp_path):
  """A fine-tune's model is its init run's: a model flag set to another value is refused with
  the field named, while one equal to the run's (or left at the default) passes."""
  import types  # pylint: disable=g-import-not-at-top
  from kaleido import config as config_lib  # pylint: disable=g-import-not-at-top
  from kaleido import errors as errors_lib  # pylint: disable=g-import-not-at-top
  from kaleido import experiment  # pylint: disable=g-import-not-at-top
  run_dir = str(tmp_path / "pretrain")
  init_model = config_lib.KaleidoBertConfig(hidden_size=128, fusion_layer=0)
  config_lib.save(config_lib.ExperimentConfig(
      model=init_model, data=config_lib.DataConfig(vocab_hash="v"),
      training=config_lib.TrainingConfig(model_dir=run_dir)))
  manifest = types.SimpleNamespace(vocab_hash="v", max_seq_length=init_model.max_seq_length,
                                   patch_size=init_model.patch_size)

  def finetune(**model_flags) -> config_lib.KaleidoBertConfig:
    config = config_lib.ExperimentConfig(
        model=config_lib.KaleidoBertConfig(**model_flags),
        init=config_lib.InitConfig(init_checkpoint=run_dir))
    return experiment._model_config(config, manifest, None)  # pylint: disable=protected-access

  assert finetune(hidden_size=128).hidden_size == 128
  with pytest.raises(errors_lib.KaleidoError, match=r"ignored: fusion_layer=2 \(the run's: 0\)"):
    finetune(fusion_layer=2)


def test_a_run_is_rebuilt_from_its_run_config_alone(data, tmp_path):
  """The flags' config, completed (kaleido.experiment), is what run_config.json holds: the saved
  file alone, in another model_dir, makes the same steps."""
  import dataclasses  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from kaleido import config as config_lib  # pylint: disable=g-import-not-at-top
  from kaleido import config_flags  # pylint: disable=g-import-not-at-top
  from kaleido import experiment  # pylint: disable=g-import-not-at-top
  flag_values = flags.FlagValues()
  config_flags.define_flags(flag_values)
  flag_values(["train.py", f"--model_dir={tmp_path / 'flags'}", f"--train_data={data}",
               *COMMON_FLAGS, "--train_steps=3", "--patch_cnn_weights=random", "--seed=5"])
  strategy = tf.distribute.get_strategy()
  config = experiment.complete(config_flags.config_from_flags(flag_values), strategy)
  from_flags = experiment.train(config, strategy)
  saved = config_lib.load(str(tmp_path / "flags"))
  assert saved == config
  rebuilt = experiment.train(dataclasses.replace(saved, training=dataclasses.replace(
      saved.training, model_dir=str(tmp_path / "rebuilt"))), strategy)
  assert from_flags.step == rebuilt.step == 3
  assert from_flags.losses == rebuilt.losses
