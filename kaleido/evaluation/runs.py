"""A trained run restored for evaluation, search and export: its model with the checkpoint's
weights, its vocabulary checked against the data, the feature cache it reads."""

from __future__ import annotations

import dataclasses

import tf_keras

from kaleido import config as config_lib
from kaleido import errors
from kaleido.feature_cache import store as cache_store
from kaleido.model import kaleido_bert
from kaleido.records import manifest as manifest_lib
from kaleido.tasks import kaleido_task
from kaleido.utils import restoring

# The evaluation tasks (evaluate.py --task) of each kind of run.
TASKS_OF_RUN = {"pretrain": ("itr", "tir"), "retrieval": ("itr", "tir"),
                "category": ("category",), "subcategory": ("subcategory",),
                "caption": ("caption",)}


def check_vocabulary(run: config_lib.ExperimentConfig, manifest: manifest_lib.Manifest,
                     folder: str) -> None:
  """One sentence when the prepared `folder` was tokenised with another vocabulary than the
  run was trained with."""
  if manifest.vocab_hash != run.data.vocab_hash:
    raise errors.KaleidoError(
        f"{folder!r} was prepared with the vocabulary {manifest.vocab_file!r}, the checkpoint "
        f"was trained with {run.data.vocab_file!r}; prepare the data with the checkpoint's "
        "vocabulary.")


def restored_model(run: config_lib.ExperimentConfig,
                    checkpoint_path: str) -> kaleido_bert.KaleidoMatcher:
  """The run's downstream model with the checkpoint's weights; for a pre-training run, the
  retrieval model made of its backbone, ITM head and (when it trained one) ITC head (retrieval
  scored without fine-tuning)."""
  task = run.task if run.task.is_finetune else config_lib.TaskConfig(
      name="retrieval", finetune=config_lib.FinetuneConfig(
          itc_weight=float(run.task.has_contrastive_head)))
  model = kaleido_bert.build_finetune_model(task, run.model)
  if run.task.is_finetune:
    restoring.restore(checkpoint_path, {"model": model},
                      "the model its run_config.json describes differs; was the model_dir reused "
                      "for another run?")
  else:
    restoring.restore(checkpoint_path, kaleido_bert.pretraining_checkpoint_objects(model),
                      "the model its run_config.json describes differs")
  return model


def feature_cache(run: config_lib.ExperimentConfig, model: tf_keras.Model, folder: str,
                  patch_features: str = "") -> cache_store.FeatureCache | None:
  """The feature cache of `folder` for the frozen patch embedder of the restored `model` when
  the run reads cached features (its --patch_features, or `patch_features` when given), built on
  first use; None when the patches are embedded from their pixels."""
  if patch_features:
    run = dataclasses.replace(run, data=dataclasses.replace(run.data,
                                                             patch_features=patch_features))
  if not config_lib.uses_feature_cache(run):
    return None
  return kaleido_task.feature_caches(model, [folder], run.data.feature_cache_dir)[folder]


def checkpoint_step(checkpoint_path: str) -> int:
  """`.../ckpt-1200` -> 1200 (0 for other names)."""
  suffix = checkpoint_path.rsplit("-", 1)[-1]
  return int(suffix) if suffix.isdigit() else 0
