"""Word-prediction pre-training of the patch CNN: a stand-in for ImageNet weights.

The paper's patch CNN is an ImageNet ResNet-50. Where no such weights are at hand (the demo
catalog, or a user without the ImageNet file), the patch CNN can be pre-trained on the catalog's
own image-text pairs instead: from the product crop (the L1 patch) it predicts which vocabulary
words the product's text holds (softmax cross-entropy against the text's normalised bag of
words, as in weakly supervised visual pre-training from captions). The features then carry what
the texts name (colour, garment, pattern, details); a random CNN's barely do. Only the
training folder is read; `export_patch_cnn` writes the CNN's weights as the Keras .h5 file
that `--patch_cnn_weights` loads (the word head is dropped).
"""

from __future__ import annotations

import os

import tensorflow as tf
import tf_keras

from kaleido import config as config_lib
from kaleido.dataloaders import patch_cnn_words as word_inputs
from kaleido.model import losses as losses_lib
from kaleido.model import patch_embedder
from kaleido.records import manifest as manifest_lib
from kaleido.text import vocab as vocab_lib
from kaleido.training import base_task
from kaleido.training import trainer as trainer_lib
from kaleido.utils import files


class WordPredictor(tf_keras.Model):
  """(B, P, P, 3) uint8 L1 patches -> (B, V) word logits through the patch CNN."""

  def __init__(self, model: config_lib.PatchCnnConfig, vocab_size: int, **kwargs):
    super().__init__(**kwargs)
    self._cnn_name = model.patch_cnn
    self.cnn = patch_embedder.build_cnn(model.patch_cnn, model.patch_size, model.feature_size)
    self.word_head = tf_keras.layers.Dense(vocab_size, name="word_head")

  def call(self, patches: tf.Tensor) -> tf.Tensor:
    pixels = patch_embedder.preprocess(self._cnn_name, tf.cast(patches, tf.float32))
    return self.word_head(tf.nn.relu(self.cnn(pixels)))


class PatchCnnWordsTask(base_task.Task):
  """Softmax cross-entropy of the word logits against the text's bag of words."""

  def __init__(self, config: config_lib.ExperimentConfig):
    super().__init__(config)
    tokens = vocab_lib.read_vocab(config.data.vocab_file)
    self._vocab_size = len(tokens)
    self._excluded_ids = tuple(tokens.index(token) for token in vocab_lib.SPECIAL_TOKENS)

  @property
  def reported(self) -> frozenset[str]:
    return frozenset({"total", "words"})

  def build_model(self) -> tf_keras.Model:
    model = self.config.model
    predictor = WordPredictor(model, self._vocab_size, name="patch_cnn_words")
    predictor(tf_keras.Input((model.patch_size, model.patch_size, 3), dtype=tf.uint8))
    return predictor

  def dataset(self, batch_size, seed, input_context, training=True):
    if input_context:
      batch_size = input_context.get_per_replica_batch_size(batch_size)
    return word_inputs.word_dataset(self.data_folder(training), batch_size, self._vocab_size,
                                    self._excluded_ids, seed)

  def model_inputs(self, model, batch):
    return batch["patches"]

  def replica_losses(self, batch, outputs):
    per_example = tf.nn.softmax_cross_entropy_with_logits(batch["targets"], outputs)
    shares = losses_lib.replica_shares({"words": losses_lib.weighted_term(
        per_example, tf.ones_like(per_example))})
    return {**shares, "total": shares["words"]}

  def replica_metrics(self, batch, outputs):
    return {}


def export_patch_cnn(model: WordPredictor, path: str) -> None:
  """Writes the patch CNN's weights (no word head) to the Keras .h5 file `path`, atomically."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with files.atomic_path(path) as tmp_path:
    model.cnn.save_weights(tmp_path, save_format="h5")


def experiment(train_data: str, model_dir: str, patch_cnn: str = "small", train_steps: int = 800,
               seed: int = 0, batch_size: int = 64, learning_rate: float = 1e-3,
               feature_size: int = 2048) -> config_lib.ExperimentConfig:
  """The experiment of a word pre-training run on the prepared folder `train_data` (Adam at a
  constant rate, no clipping), validated."""
  manifest = manifest_lib.load(train_data)
  return config_lib.validate(config_lib.ExperimentConfig(
      task=config_lib.TaskConfig(name=config_lib.PATCH_CNN_WORDS),
      data=config_lib.DataConfig(train_data=train_data, vocab_file=manifest.vocab_file,
                                 vocab_hash=manifest.vocab_hash,
                                 max_seq_length=manifest.max_seq_length,
                                 patch_size=manifest.patch_size),
      model=config_lib.PatchCnnConfig(patch_cnn=patch_cnn, patch_size=manifest.patch_size,
                                      feature_size=feature_size),
      optimizer=config_lib.OptimizerConfig(name="adam", learning_rate=learning_rate,
                                           schedule="constant", warmup_steps=0, clip_norm=0.0),
      training=config_lib.TrainingConfig(model_dir=model_dir, train_steps=train_steps,
                                         batch_size=batch_size, seed=seed,
                                         checkpoint_every=train_steps, summary_every=50)))


def train_and_export(config: config_lib.ExperimentConfig, output_path: str,
                     strategy: tf.distribute.Strategy | None = None) -> dict[str, float]:
  """Trains (or resumes) the run of `config`, writes the patch CNN to `output_path` and returns
  the losses of the last summary window."""
  task = PatchCnnWordsTask(config)
  trainer = trainer_lib.Trainer(config, task, strategy)
  result = trainer.run()
  trainer_lib.stop_if_interrupted(result)
  export_patch_cnn(trainer.model, output_path)
  return result.losses
