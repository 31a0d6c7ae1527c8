"""The task an experiment config names."""

from __future__ import annotations

from kaleido import config as config_lib
from kaleido.tasks import alignment_captioner
from kaleido.tasks import captioning
from kaleido.tasks import classification
from kaleido.tasks import foreground_unet
from kaleido.tasks import patch_cnn_words
from kaleido.tasks import pretraining
from kaleido.tasks import retrieval
from kaleido.training import base_task

TASKS = {
    config_lib.PRETRAIN: pretraining.PretrainingTask,
    "retrieval": retrieval.RetrievalTask,
    "category": classification.ClassificationTask,
    "subcategory": classification.ClassificationTask,
    "caption": captioning.CaptionTask,
    config_lib.CAPTIONER: alignment_captioner.CaptionerTask,
    config_lib.FOREGROUND: foreground_unet.ForegroundTask,
    config_lib.PATCH_CNN_WORDS: patch_cnn_words.PatchCnnWordsTask,
}


def create_task(config: config_lib.ExperimentConfig) -> base_task.Task:
  """The task `config.task.name` names."""
  return TASKS[config.task.name](config)
