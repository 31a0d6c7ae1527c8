"""Pre-training (paper sections 3.4-3.6, Eq. 8) as a training task."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras

from kaleido import config as config_lib
from kaleido.dataloaders import features
from kaleido.dataloaders import pretraining as pretraining_inputs
from kaleido.model import kaleido_bert
from kaleido.model import losses as losses_lib
from kaleido.patches import pictures
from kaleido.tasks import itm_groups
from kaleido.tasks import kaleido_task

NUM_PICTURES = 3
# The phase of the first --matching_first_steps steps: ITM (and ITC) alone, on a pass that
# computes only what they read.
MATCHING_PHASE = "matching"


class PretrainingTask(kaleido_task.KaleidoTask):
  """AMLM, ITM and the five kaleido tasks on the on-the-fly masked pipeline."""

  def __init__(self, config):
    super().__init__(config)
    self._pictures_of = None  # (batch size, seed, input context) of the cached training data

  @property
  def reported(self) -> frozenset[str]:
    pretraining = self.config.task.pretraining
    accuracies = {accuracy for name, (_, _, accuracy) in losses_lib.CLASSIFIERS.items()
                  if pretraining.is_enabled(name)}
    if pretraining.is_enabled("itc"):
      accuracies.add(losses_lib.CONTRASTIVE_ACCURACY)
    return frozenset({"total", *pretraining.enabled, *accuracies})

  def build_model(self) -> tf_keras.Model:
    return kaleido_bert.build_pretrainer(self.model_config, self.config.task.pretraining)

  def dataset(self, batch_size, seed, input_context, training=True) -> tf.data.Dataset:
    cache = self.feature_cache(training)
    if training and cache is not None:
      self._pictures_of = (batch_size, seed, input_context)
    return self._dataset(batch_size, seed, input_context, training, cache)

  def _dataset(self, batch_size, seed, input_context, training, cache) -> tf.data.Dataset:
    return pretraining_inputs.pretraining_dataset(
        self.data_folder(training), batch_size, self.config.task.pretraining, self.special_ids,
        seed=seed, input_context=input_context, cache=cache,
        trim_text=config_lib.trims_text(self.config))

  def phase(self, step):
    return MATCHING_PHASE if step < self.config.task.pretraining.matching_first_steps else None

  def forward(self, model, batch, training, phase=None):
    """The pre-training pass (in the matching phase only what ITM and ITC read); with in-step
    ITM groups (itm_negatives_per_positive), ITM's logits are those of the groups made from the
    restored pairs (itm_groups.group_outputs)."""
    outputs = model(self.model_inputs(model, batch), training=training,
                    matching_only=phase == MATCHING_PHASE)
    pretraining = self.config.task.pretraining
    k = pretraining.itm_negatives_per_positive
    if not k:
      return outputs
    restored = {"input_word_ids": outputs.pop("restored_word_ids"),
                "input_mask": batch["input_mask"], "patch_boxes": batch["patch_boxes"],
                "patch_features": outputs.pop("restored_patch_features")}
    share = float(pretraining.hard_negatives)
    groups = itm_groups.group_outputs(
        itm_groups.global_pool(restored, batch), k, lambda pool, side, seed: itm_groups.random_scores(pool, share, seed),
        lambda pairs: model.itm_logits(pairs, training=training), pretraining.itm_group_every)
    return {**outputs, **groups}

  def _itm_terms(self, outputs):
    """(loss term, accuracy term) of the in-step ITM groups; None with the batch's own pairs."""
    if "itm_group_labels" not in outputs:
      return None, None
    pretraining = self.config.task.pretraining
    loss, correct, weights = itm_groups.group_terms(
        outputs, pretraining.itm_loss == "listwise", pretraining.itm_negatives_per_positive)
    return (losses_lib.weighted_term(loss, weights), losses_lib.weighted_term(correct, weights))

  @staticmethod
  def _matching_only(outputs) -> bool:
    """Whether `outputs` are a matching-phase pass's (no masked-pass heads ran)."""
    return "mlm_logits" not in outputs

  def replica_losses(self, batch, outputs):
    return losses_lib.replica_losses(batch, outputs, self.config.task.pretraining,
                                     self._itm_terms(outputs)[0], self._matching_only(outputs))

  def replica_metrics(self, batch, outputs):
    return losses_lib.replica_metrics(batch, outputs, self._itm_terms(outputs)[1],
                                      self._matching_only(outputs))

  def summary_images(self, model, batch):
    """The first examples' patches after the transforms. A batch of cached features has no
    pixels: the first call shows the first batch of the pixel pipeline with the same seed
    (the same examples and transforms as the first training batch), later calls nothing."""
    del model
    if features.is_cached(batch):
      if self._pictures_of is None:
        return {}
      batch_size, seed, input_context = self._pictures_of
      self._pictures_of = None
      pixels = self._dataset(batch_size, seed, input_context, True, None).take(1)
      batch = {"patches": next(iter(pixels))["patches"].numpy()}
    strips = [pictures.kaleido_strip(p) for p in batch["patches"][:NUM_PICTURES]]
    return {"kaleido_patches_after_transforms": np.stack(strips)}
