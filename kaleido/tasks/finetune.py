"""What the downstream tasks share: the pre-trained parts, their initialisation, their inputs.

Every downstream model is made of the pre-training model's own layers (patch embedder, encoder
and heads, so the ITM head and the tied MLM decoder carry over) plus, for classification, a new
head. The pre-training model is built first as the factory of these parts; restoring a
pre-training checkpoint into it initialises them all.
"""

from __future__ import annotations

import abc

import tensorflow as tf
import tf_keras

from kaleido import config as config_lib
from kaleido.model import kaleido_bert
from kaleido.model import losses as losses_lib
from kaleido.pretraining import inputs as pretraining_inputs
from kaleido.records import reader
from kaleido.tasks import base
from kaleido.training import run_config as run_config_lib
from kaleido.utils import checkpoints

ENCODER_KEYS = ("input_word_ids", "input_mask", "patches", "patch_boxes")


class Parts:
  """The pre-training model's layers a downstream model is made of."""

  def __init__(self, model_config: config_lib.ModelConfig):
    self.pretraining_model = kaleido_bert.build_pretraining_model(
        model_config, config_lib.TaskConfig(), model_config.backbone_weights or None)
    self.patch_embedder = self.pretraining_model.get_layer(kaleido_bert.PATCH_EMBEDDER)
    self.encoder = self.pretraining_model.get_layer(kaleido_bert.ENCODER)
    self.heads = self.pretraining_model.get_layer("heads")

  def restore(self, checkpoint_path: str) -> None:
    """Loads a pre-training checkpoint (its optimizer state and step are left out)."""
    checkpoints.restore(checkpoint_path, {"model": self.pretraining_model},
                        "fine-tune with the sizes it was pre-trained with")


class FinetuneTask(base.Task):
  """A downstream task on the prepared folder `config.train.train_data`."""

  def __init__(self, config, special_ids):
    super().__init__(config, special_ids)
    if config.finetune is None:
      raise ValueError("A downstream task needs config.finetune.")
    self.finetune = config.finetune
    self.parts: Parts | None = None

  def build_model(self) -> tf_keras.Model:
    self.parts = Parts(self.config.model)
    model_inputs = kaleido_bert.encoder_inputs(self.config.model)
    outputs = self.model_outputs(model_inputs, self.parts)
    return tf_keras.Model(model_inputs, outputs, name=f"kaleido_bert_{self.finetune.task}")

  def encode(self, model_inputs: dict[str, tf.Tensor], parts: Parts,
             attention_mask: tf.Tensor | None = None) -> dict[str, tf.Tensor]:
    """Encoder outputs of the text and patches of `model_inputs`."""
    encoder_args = {key: model_inputs[key] for key in ("input_word_ids", "input_mask",
                                                       "patch_boxes")}
    encoder_args["patch_features"] = parts.patch_embedder(model_inputs["patches"])
    if attention_mask is not None:
      encoder_args["attention_mask"] = attention_mask
    return parts.encoder(encoder_args)

  @property
  def loss_name(self) -> str:
    """The name of the task's loss in TensorBoard; its accuracy is `<loss_name>_accuracy`."""
    return self.finetune.task

  @property
  def reported(self) -> frozenset[str]:
    return frozenset({"total", self.loss_name, f"{self.loss_name}_accuracy"})

  @abc.abstractmethod
  def terms(self, batch: dict[str, tf.Tensor],
            outputs: dict[str, tf.Tensor]) -> tuple[losses_lib.Term, losses_lib.Term]:
    """(loss term, correct-prediction term) of this replica's batch."""

  def replica_losses(self, batch, outputs):
    shares = losses_lib.replica_shares({self.loss_name: self.terms(batch, outputs)[0]})
    return {**shares, "total": shares[self.loss_name]}

  def replica_metrics(self, batch, outputs):
    return losses_lib.replica_shares(
        {f"{self.loss_name}_accuracy": self.terms(batch, outputs)[1]})

  @abc.abstractmethod
  def model_outputs(self, model_inputs: dict[str, tf.Tensor],
                    parts: Parts) -> dict[str, tf.Tensor]:
    """The task's outputs from the encoder inputs."""

  def initialize(self, model: tf_keras.Model) -> str:
    """The pre-training checkpoint `init_checkpoint`, else `bert_init`, else nothing."""
    del model
    if not self.finetune.init_checkpoint:
      return (self.initialize_from_bert(self.parts.pretraining_model) or
              "Fine-tuning from random weights (no --init_checkpoint).")
    path = run_config_lib.latest_checkpoint(self.finetune.init_checkpoint)
    self.parts.restore(path)
    return f"Initialised from the pre-training checkpoint {path}."

  def examples(self, batch_size: int, seed: int | None,
               input_context: tf.distribute.InputContext | None) -> tf.data.Dataset:
    """Endless shuffled batches of reader examples (encoder inputs, labels, product ids)."""
    batch_size = (input_context.get_per_replica_batch_size(batch_size) if input_context
                  else batch_size)
    keys = ENCODER_KEYS + ("category_id", "subcategory_id", "product_id")
    examples = reader.make_dataset(self.config.train.train_data, shuffle=True, repeat=True,
                                   seed=seed, input_context=input_context,
                                   name_as_text=self.finetune.name_as_text)
    return examples.map(lambda example: {key: example[key] for key in keys},
                        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).batch(
                            batch_size, drop_remainder=True)

  def seeded(self, batches: tf.data.Dataset, seed: int | None,
             input_context: tf.distribute.InputContext | None) -> tf.data.Dataset:
    """`(batch, (2,) seed)` pairs for per-batch random draws."""
    pipeline_id = input_context.input_pipeline_id if input_context else 0
    return tf.data.Dataset.zip(batches, pretraining_inputs.seed_stream(seed, pipeline_id))
