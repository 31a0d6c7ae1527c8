"""The alignment generator's Show-Attend-Tell captioner (paper section 3.3) as a training task.

The objective is SAT's (Xu et al. 2015, Eq. 14) per caption: (sum_t -log p(y_t) + lambda *
sum_i (1 - sum_t alpha_ti)^2) / T, averaged over the captions; the second term (the doubly
stochastic regulariser) asks every grid cell to receive attention over the caption as a whole.
Teacher forcing runs on the batch cut to its longest caption. Pictures of what the current
weights align go to TensorBoard with the image summaries.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras

from kaleido.alignment import captioner as captioner_lib
from kaleido.alignment import captioner_dir
from kaleido.alignment import generator
from kaleido.alignment import inputs
from kaleido.alignment import pictures
from kaleido.model import losses as losses_lib
from kaleido.pretrained import resnet
from kaleido.training import base_task

NUM_PICTURE_EXAMPLES = 3
LOSSES = ("caption", "cross_entropy", "attention_penalty")
METRICS = ("accuracy", "gate")


def _cut(batch: dict[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
  """Input and target ids of a batch cut to its longest caption (T = longest - 1 steps)."""
  steps = tf.reduce_max(batch["length"]) - 1
  return batch["input_ids"][:, :steps], batch["target_ids"][:, :steps]


def caption_terms(logits: tf.Tensor, attention: tf.Tensor, gate: tf.Tensor, targets: tf.Tensor,
                  pad_id: int, attention_reg: float) -> dict[str, losses_lib.Term]:
  """SAT's objective (module docstring) and its parts as (numerator, denominator) terms.

  `logits` (B, T, V), `attention` (B, T, N), `gate` (B, T) and `targets` (B, T) with `pad_id`
  after each caption: `caption` the loss, `cross_entropy` per token, `attention_penalty`
  sum_i (1 - sum_t alpha_ti)^2 per caption, `accuracy` per token, `gate` per step.
  """
  real = tf.cast(targets != pad_id, tf.float32)
  tokens = tf.reduce_sum(real, axis=1)
  cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits) * real
  coverage = tf.reduce_sum(attention * real[..., None], axis=1)
  penalty = tf.reduce_sum(tf.square(1.0 - coverage), axis=1)
  per_caption = (tf.reduce_sum(cross_entropy, axis=1) + attention_reg * penalty) / tf.maximum(
      tokens, 1.0)
  correct = tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), targets),
                    tf.float32) * real
  captions = tf.cast(tf.size(tokens), tf.float32)
  return {"caption": (tf.reduce_sum(per_caption), captions),
          "cross_entropy": (tf.reduce_sum(cross_entropy), tf.reduce_sum(tokens)),
          "attention_penalty": (tf.reduce_sum(penalty), captions),
          "accuracy": (tf.reduce_sum(correct), tf.reduce_sum(tokens)),
          "gate": (tf.reduce_sum(gate), tf.cast(tf.size(gate), tf.float32))}


class CaptionerTask(base_task.Task):
  """Teacher-forced SAT captioning of the prepared crops with the prepared token ids."""

  @property
  def reported(self) -> frozenset[str]:
    return frozenset({"total", *LOSSES, *METRICS})

  def build_model(self) -> tf_keras.Model:
    return captioner_lib.Captioner(self.config.model)

  def initialize(self, model: tf_keras.Model) -> str:
    weights = self.config.init.patch_cnn_weights
    if not weights:
      return ""
    resnet.load_cnn_weights(model.cnn, weights)
    return f"Captioner CNN weights from {weights}."

  def dataset(self, batch_size, seed, input_context, training=True):
    if input_context:
      batch_size = input_context.get_per_replica_batch_size(batch_size)
    objective = self.config.task.captioner
    return inputs.training_dataset(self.data_folder(training), self.config.model, batch_size,
                                   seed, flip=objective.flip and training,
                                   word_dropout=objective.word_dropout if training else 0.0)

  def model_inputs(self, model, batch):
    return {"image": batch["image"], "input_ids": _cut(batch)[0]}

  def _terms(self, batch, outputs) -> dict[str, losses_lib.Term]:
    return caption_terms(outputs["logits"], outputs["attention"], outputs["gate"], _cut(batch)[1],
                         self.config.model.pad_id, self.config.task.captioner.attention_reg)

  def replica_losses(self, batch, outputs):
    terms = self._terms(batch, outputs)
    shares = losses_lib.replica_shares({name: terms[name] for name in LOSSES})
    return {**shares, "total": shares["caption"]}

  def replica_metrics(self, batch, outputs):
    terms = self._terms(batch, outputs)
    return losses_lib.replica_shares({name: terms[name] for name in METRICS})

  def summary_images(self, model, batch):
    """What the current weights align in the first examples of the batch."""
    aligner = generator.AlignmentGenerator(
        model, captioner_dir.vocab_tokens(self.config.training.model_dir))
    images = batch["image"][:NUM_PICTURE_EXAMPLES]
    lengths = batch["length"][:NUM_PICTURE_EXAMPLES]
    ids = [np.concatenate([row[:1], targets[:n - 1]]) for row, targets, n in zip(
        batch["input_ids"], batch["target_ids"], lengths)]
    picture = pictures.alignment_picture(images, aligner.align(images, ids), size=128)
    return {"alignments": picture[None]}
