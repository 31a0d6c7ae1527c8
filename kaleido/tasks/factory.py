"""The task a config names."""

from __future__ import annotations

from kaleido import config as config_lib
from kaleido.masking import text_masking
from kaleido.tasks import base
from kaleido.tasks import captioning
from kaleido.tasks import classification
from kaleido.tasks import pretraining
from kaleido.tasks import retrieval

_FINETUNE_TASKS = {
    "retrieval": retrieval.RetrievalTask,
    "category": classification.ClassificationTask,
    "subcategory": classification.ClassificationTask,
    "caption": captioning.CaptionTask,
}


def create_task(config: config_lib.KaleidoConfig,
                special_ids: text_masking.SpecialIds) -> base.Task:
  """Pre-training when `config.finetune` is None, else the downstream task it names."""
  if config.finetune is None:
    return pretraining.PretrainingTask(config, special_ids)
  return _FINETUNE_TASKS[config.finetune.task](config, special_ids)
