"""What pre-training and the downstream tasks share: the vocabulary's special ids, the
learning-rate groups of the pretrained text side, where the weights start, and the patch feature
caches of a frozen patch CNN."""

from __future__ import annotations

from typing import Sequence

import tf_keras

from kaleido import config as config_lib
from kaleido.dataloaders import features
from kaleido.feature_cache import builder as cache_builder
from kaleido.feature_cache import store as cache_store
from kaleido.model import backbone as backbone_lib
from kaleido.model import kaleido_bert
from kaleido.model import patch_embedder as patch_embedder_lib
from kaleido.pretrained import bert_init
from kaleido.pretrained import patch_words
from kaleido.pretrained import readers
from kaleido.pretrained import resnet
from kaleido.text import vocab as vocab_lib
from kaleido.training import base_task
from kaleido.utils import restoring


def feature_caches(model: tf_keras.Model, folders: Sequence[str], cache_dir: str = "",
                   worker: int = 0) -> dict[str, cache_store.FeatureCache]:
  """{folder: its feature cache} for the frozen patch embedder of `model` (a Kaleido-BERT task
  model), built where missing (`cache_dir`: DataConfig.feature_cache_dir; `worker`: the shard
  this process starts at)."""
  embedder = patch_embedder_lib.float32_copy(model.backbone.patch_embedder)
  return {folder: cache_builder.ensure_cache(folder, embedder, cache_dir, first_shard=worker)
          for folder in dict.fromkeys(folder for folder in folders if folder)}


class KaleidoTask(base_task.Task):
  """A Kaleido-BERT task: `config.model` is a KaleidoBertConfig."""

  def __init__(self, config: config_lib.ExperimentConfig):
    super().__init__(config)
    self.model_config: config_lib.KaleidoBertConfig = config.model
    self.special_ids = vocab_lib.special_ids_of(config.data.vocab_file)
    self._caches: dict[str, cache_store.FeatureCache] = {}

  def prepare_inputs(self, model: tf_keras.Model, worker: int = 0) -> None:
    """With a frozen patch CNN (config.uses_feature_cache), the feature caches of the training
    and evaluation folders for the patch CNN's weights, built where missing."""
    if not config_lib.uses_feature_cache(self.config):
      return
    data = self.config.data
    self._caches = feature_caches(model, (data.train_data, data.eval_data),
                                  data.feature_cache_dir, worker)

  def feature_cache(self, training: bool = True) -> cache_store.FeatureCache | None:
    """The feature cache `dataset` reads (None: pixels)."""
    if not config_lib.uses_feature_cache(self.config):
      return None
    folder = self.data_folder(training)
    if folder not in self._caches:
      raise RuntimeError(f"The feature cache of {folder!r} is not prepared; call "
                         "prepare_inputs(model) before dataset().")
    return self._caches[folder]

  def model_inputs(self, model: tf_keras.Model, batch):
    """The batch's keys the model declares, the cached features in place of pixels."""
    return {key: batch[key]
            for key in features.cached_keys(model.input_keys, features.is_cached(batch))}

  def lr_rules(self) -> base_task.LrRules:
    """The BERT checkpoint's weights at the pretrained rate; a pooler or MLM transform it does
    not supply (or a fresh pooler, or re-initialised top layers) at the full rate."""
    optimizer, init = self.config.optimizer, self.config.init
    pooler = masked_lm = True
    if init.bert_init and (optimizer.pretrained_lr_multiplier != 1.0 or
                           optimizer.layer_lr_decay != 1.0 or optimizer.frozen_pretrained_steps or
                           init.bert_reinit_layers):
      checkpoint = readers.read_bert_checkpoint(init.bert_init)
      pooler = checkpoint.has_pooler and init.bert_pooler
      masked_lm = checkpoint.has_mlm_head
    return backbone_lib.pretrained_lr_rules(self.model_config.num_layers,
                                            optimizer.pretrained_lr_multiplier,
                                            optimizer.layer_lr_decay, pooler, masked_lm,
                                            init.bert_reinit_layers)

  def initialize(self, model: tf_keras.Model) -> str:
    """A pre-training checkpoint (`init.init_checkpoint`), else the patch CNN weights file and
    the BERT checkpoint (`init.patch_cnn_weights`, `init.bert_init`), else random weights."""
    init = self.config.init
    if init.init_checkpoint:
      path = restoring.latest_checkpoint(init.init_checkpoint)
      contrastive = kaleido_bert.checkpoint_has_contrastive_head(path)
      restoring.restore(path, kaleido_bert.pretraining_checkpoint_objects(model, contrastive),
                        "fine-tune with the sizes it was pre-trained with")
      fresh = (" (its ITC head starts fresh: the pre-training ran without itc)"
               if getattr(model, "contrastive", None) is not None and not contrastive else "")
      return f"Initialised from the pre-training checkpoint {path}{fresh}."
    notes = []
    if init.patch_cnn_weights:
      resnet.load_cnn_weights(model.backbone.patch_embedder.cnn, init.patch_cnn_weights)
      notes.append(f"Patch CNN weights from {init.patch_cnn_weights}.")
    if init.bert_init:
      checkpoint = readers.read_bert_checkpoint(init.bert_init)
      notes.append(bert_init.initialize_from_bert(model, checkpoint,
                                                  load_pooler=init.bert_pooler,
                                                  reinit_layers=init.bert_reinit_layers,
                                                  patch_norm_from_text=init.patch_norm_from_text
                                                  ).summary())
    if init.patch_projection_from_words:
      notes.append(patch_words.initialize_patch_projections(
          model, self.config.data.train_data, self.config.data.vocab_file))
    return "\n".join(notes) or "Starting from random weights."
