"""A training run from its config: the config completed from what it names (the prepared data,
the BERT checkpoint, the pre-training run) and trained.

train.py turns its flags into the first config (kaleido.config_flags) and calls `train`; the
completed config is what the run saves as run_config.json.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Callable

import tensorflow as tf

from kaleido import config as config_lib
from kaleido import errors
from kaleido.demo import pipeline as demo_pipeline
from kaleido.pretrained import bert_init
from kaleido.pretrained import readers
from kaleido.pretrained import resnet
from kaleido.records import manifest as manifest_lib
from kaleido.tasks import factory
from kaleido.tasks import patch_cnn_words
from kaleido.text import vocab as vocab_lib
from kaleido.training import trainer as trainer_lib
from kaleido.utils import files

CATALOG = "catalog"  # InitConfig.patch_cnn_weights: pre-train the CNN on the data's own pairs
DEMO = "demo"  # DataConfig.train_data / eval_data: the embedded demo catalog's folders
Log = Callable[[str], None]


def _stderr(line: str) -> None:
  print(line, file=sys.stderr)


def _demo_vocab(config: config_lib.ExperimentConfig, bert_checkpoint) -> str:
  """The vocabulary `demo` data is prepared with: the BERT checkpoint's, else the one the
  init_checkpoint run was trained with (a fine-tune of a pretrained-BERT start), else the
  demo's own ("")."""
  if bert_checkpoint:
    return bert_checkpoint.vocab_file or ""
  if config.init.init_checkpoint:
    return config_lib.load(config.init.init_checkpoint).data.vocab_file
  return ""


def _data_folders(data: config_lib.DataConfig, demo_vocab: str, log: Log) -> tuple[str, str]:
  """(train_data, eval_data) folders; `demo` is resolved to the demo's train and development
  splits (made on first use), prepared with `demo_vocab` when one is given."""
  train_data, eval_data = data.train_data, data.eval_data
  if DEMO in (train_data, eval_data):
    if train_data == DEMO:
      log(f"Training on the demo data set ({data.demo_dir}); pass --train_data=FOLDER for data "
          "prepared by data/prepare.py.")
    demo = demo_pipeline.ensure_demo_data(
        demo_pipeline.DemoConfig(work_dir=data.demo_dir, vocab_file=demo_vocab), log=log)
    train_data = demo.train_dir if train_data == DEMO else train_data
    eval_data = demo.development_dir if eval_data == DEMO else eval_data
  return train_data, eval_data


def _model_config(config: config_lib.ExperimentConfig, manifest: manifest_lib.Manifest,
                  bert_checkpoint) -> config_lib.KaleidoBertConfig:
  """Model sizes from the config, from the BERT checkpoint, or from the pre-training run when
  fine-tuning from one; shapes from the prepared data."""
  if config.init.init_checkpoint:
    init_run = config_lib.load(config.init.init_checkpoint)
    if init_run.data.vocab_hash != manifest.vocab_hash:
      raise errors.KaleidoError(
          f"--init_checkpoint={config.init.init_checkpoint!r} was trained with the vocabulary "
          f"{init_run.data.vocab_file!r}, but --train_data was prepared with "
          f"{manifest.vocab_file!r}; prepare the data with the checkpoint's vocabulary.")
    model = init_run.model
    if (model.max_seq_length, model.patch_size) != (manifest.max_seq_length,
                                                      manifest.patch_size):
      raise errors.KaleidoError(
          f"--init_checkpoint was trained on {model.max_seq_length} text positions and "
          f"{model.patch_size}-pixel patches, --train_data has {manifest.max_seq_length} and "
          f"{manifest.patch_size}; prepare the data to match.")
    ignored = _settings_left_to_the_init_run(config.model, model)
    if ignored:
      raise errors.KaleidoError(
          f"A fine-tune takes its model from --init_checkpoint={config.init.init_checkpoint!r}, "
          f"so these model flags would be ignored: {', '.join(ignored)}; drop them, or "
          "pre-train with them.")
    return model
  sizes = {"vocab_size": len(vocab_lib.read_vocab(manifest.vocab_file))}
  if bert_checkpoint is not None:
    bert_init.check_vocab(bert_checkpoint, manifest.vocab_hash)
    sizes.update(bert_init.model_config_overrides(bert_checkpoint,
                                                    config.init.bert_reinit_layers))
  return dataclasses.replace(config.model, **sizes, max_seq_length=manifest.max_seq_length,
                             patch_size=manifest.patch_size)


def _settings_left_to_the_init_run(asked: config_lib.KaleidoBertConfig,
                                   init_model: config_lib.KaleidoBertConfig) -> list[str]:
  """The model fields the flags set (away from the default) to other values than the init
  run's, as "name=asked (the run's: value)"."""
  default = config_lib.KaleidoBertConfig()
  return [f"{field.name}={getattr(asked, field.name)!r} (the run's: "
          f"{getattr(init_model, field.name)!r})"
          for field in dataclasses.fields(asked)
          if getattr(default, field.name) != getattr(asked, field.name)
          != getattr(init_model, field.name)]


def _patch_cnn_weights(config: config_lib.ExperimentConfig, strategy: tf.distribute.Strategy,
                       log: Log) -> str:
  """The patch CNN weights file of `init.patch_cnn_weights`; `catalog` trains it on first use
  (kept as MODEL_DIR/patch_cnn_words.h5)."""
  if config.init.init_checkpoint:
    return ""  # the checkpoint holds the patch CNN's weights
  if config.init.patch_cnn_weights != CATALOG:
    return resnet.resolve_resnet_weights(config.init.patch_cnn_weights) or ""
  model_dir = config.training.model_dir
  path = os.path.join(model_dir, "patch_cnn_words.h5")
  if not os.path.isfile(path):
    words = patch_cnn_words.experiment(
        config.data.train_data, os.path.join(model_dir, "patch_cnn_words"),
        config.model.patch_cnn, config.init.catalog_patch_cnn_steps, config.training.seed)
    losses = patch_cnn_words.train_and_export(words, path, strategy)
    log(f"Patch CNN word prediction: loss {losses.get('words', float('nan')):.3f} over the last "
        f"steps; weights in {path}")
  return path


def complete(config: config_lib.ExperimentConfig, strategy: tf.distribute.Strategy,
             log: Log = _stderr) -> config_lib.ExperimentConfig:
  """`config` completed from the data (made first for `demo`), the BERT checkpoint and the
  pre-training run, validated; the patch CNN pre-trained first for `catalog` weights."""
  bert_path = bert_init.resolve_bert_init(config.init.bert_init) if config.init.bert_init else ""
  bert_checkpoint = readers.read_bert_checkpoint(bert_path) if bert_path else None
  train_data, eval_data = _data_folders(config.data, _demo_vocab(config, bert_checkpoint), log)
  manifest = manifest_lib.load(train_data)
  if files.file_sha256(manifest.vocab_file) != manifest.vocab_hash:
    raise errors.KaleidoError(
        f"The vocabulary {manifest.vocab_file!r} changed since {train_data!r} was prepared "
        "(its SHA-256 differs from the manifest's); restore it or re-run data/prepare.py.")
  if eval_data and manifest_lib.load(eval_data).vocab_hash != manifest.vocab_hash:
    raise errors.KaleidoError(f"--eval_data={eval_data!r} was prepared with another vocabulary "
                              f"than --train_data; prepare it with {manifest.vocab_file}.")
  label_names = manifest_lib.label_names(manifest, config.task.name)
  config = dataclasses.replace(
      config,
      task=dataclasses.replace(config.task, finetune=dataclasses.replace(
          config.task.finetune, num_classes=len(label_names))),
      data=dataclasses.replace(
          config.data, train_data=train_data, eval_data=eval_data,
          vocab_file=manifest.vocab_file, vocab_hash=manifest.vocab_hash,
          max_seq_length=manifest.max_seq_length, patch_size=manifest.patch_size,
          label_names=label_names),
      model=_model_config(config, manifest, bert_checkpoint),
      init=dataclasses.replace(config.init, bert_init=bert_path))
  config_lib.validate(config)
  return dataclasses.replace(config, init=dataclasses.replace(
      config.init, patch_cnn_weights=_patch_cnn_weights(config, strategy, log)))


def train(config: config_lib.ExperimentConfig,
          strategy: tf.distribute.Strategy) -> trainer_lib.TrainResult:
  """Trains the completed `config` into its model_dir (resuming from its newest checkpoint)."""
  os.makedirs(config.training.model_dir, exist_ok=True)
  return trainer_lib.Trainer(config, factory.create_task(config), strategy).run()
