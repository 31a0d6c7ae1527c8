"""Word-prediction pre-training of the patch backbone: a stand-in for ImageNet weights.

The paper's patch embedder is an ImageNet ResNet-50. Where no such weights are at hand (the demo
catalog, or a user without the ImageNet file), the backbone can be pre-trained on the catalog's
own image-text pairs instead: from the product crop (the L1 patch) it predicts which vocabulary
words the product's text holds (softmax cross-entropy against the text's normalised bag of
words, as in weakly supervised visual pre-training from captions). The features then carry what
the texts name (colour, garment, pattern, details); a random backbone's barely do. Only the
training folder is read, and the word head is discarded: the output is the backbone's weights
as a Keras .h5 file that `--resnet_weights` loads.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf
import tf_keras

from kaleido import errors
from kaleido.model import patch_embedder
from kaleido.records import manifest as manifest_lib
from kaleido.records import reader
from kaleido.records import schema
from kaleido.text import tokenizer as tokenizer_lib
from kaleido.utils import files
from kaleido.utils import progress as progress_lib


@dataclasses.dataclass(frozen=True)
class BackboneTrainingConfig:
  """What to pre-train and on which prepared folder."""
  train_data: str
  output_path: str  # the backbone's weights, a Keras .h5 file
  backbone: str = "small"
  feature_size: int = 2048
  train_steps: int = 800
  batch_size: int = 64
  learning_rate: float = 1e-3
  seed: int = 0


@dataclasses.dataclass(frozen=True)
class BackboneTrainingResult:
  output_path: str
  first_loss: float  # mean word-prediction loss of the first and last 50 steps
  last_loss: float


def bag_of_words(token_ids: tf.Tensor, vocab_size: int, excluded_ids: Sequence[int]
                 ) -> tf.Tensor:
  """(L,) token ids -> (vocab_size,) float32: 1/n on each of the text's n distinct words
  (special tokens excluded), a distribution to predict with softmax cross-entropy."""
  excluded = tf.reduce_any(token_ids[:, None] == tf.constant(list(excluded_ids),
                                                             token_ids.dtype)[None, :], axis=1)
  counts = tf.reduce_sum(tf.one_hot(tf.boolean_mask(token_ids, ~excluded), vocab_size), axis=0)
  present = tf.ensure_shape(tf.minimum(counts, 1.0), [vocab_size])
  return present / tf.maximum(tf.reduce_sum(present), 1.0)


def word_dataset(folder: str, batch_size: int, vocab_size: int, excluded_ids: Sequence[int],
                 seed: int) -> tf.data.Dataset:
  """Endless shuffled batches of (uint8 L1 patches (B, P, P, 3), word targets (B, V))."""
  manifest = manifest_lib.load(folder)

  def example(serialized):
    parsed = schema.parse(serialized)
    l1_patch = reader.square_crop(tf.io.decode_jpeg(parsed["crop_jpeg"], channels=3),
                                  manifest.patch_size)
    return l1_patch, bag_of_words(tf.cast(parsed["token_ids"], tf.int32), vocab_size,
                                  excluded_ids)

  records = tf.data.TFRecordDataset(manifest.shard_paths(folder))
  return (records.repeat().shuffle(2048, seed=seed)
          .map(example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
          .batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE))


def train_backbone(config: BackboneTrainingConfig, log: Callable[[str], None] = print
                   ) -> BackboneTrainingResult:
  """Pre-trains the backbone by word prediction and writes its weights (atomically)."""
  if config.train_steps < 1 or config.batch_size < 1:
    raise errors.KaleidoError("Backbone pre-training needs at least one step and one example "
                              "per batch.")
  manifest = manifest_lib.load(config.train_data)
  tokenizer = tokenizer_lib.KaleidoTokenizer(manifest.vocab_file, manifest.max_seq_length)
  excluded = (tokenizer.pad_id, tokenizer.unk_id, tokenizer.cls_id, tokenizer.sep_id,
              tokenizer.mask_id)
  tf_keras.utils.set_random_seed(config.seed)
  backbone = patch_embedder.build_backbone(config.backbone, manifest.patch_size,
                                           config.feature_size)
  word_head = tf_keras.layers.Dense(tokenizer.vocab_size, name="word_head")
  optimizer = tf_keras.optimizers.Adam(config.learning_rate)

  @tf.function
  def step(patches, targets):
    pixels = patch_embedder.preprocess(config.backbone, tf.cast(patches, tf.float32))
    with tf.GradientTape() as tape:
      features = backbone(pixels, training=True)
      logits = word_head(tf.nn.relu(features))
      loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(targets, logits))
    variables = backbone.trainable_variables + word_head.trainable_variables
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return loss

  batches = word_dataset(config.train_data, config.batch_size, tokenizer.vocab_size, excluded,
                         config.seed)
  progress = progress_lib.Progress(config.train_steps, "backbone words", unit="steps")
  losses = []
  for patches, targets in batches.take(config.train_steps):
    losses.append(float(step(patches, targets)))
    progress.update(postfix=f"loss {np.mean(losses[-50:]):.3f}")
  progress.close()
  os.makedirs(os.path.dirname(os.path.abspath(config.output_path)), exist_ok=True)
  with files.atomic_path(config.output_path) as tmp_path:
    backbone.save_weights(tmp_path, save_format="h5")
  result = BackboneTrainingResult(config.output_path, float(np.mean(losses[:50])),
                                  float(np.mean(losses[-50:])))
  log(f"Backbone word prediction: loss {result.first_loss:.3f} -> {result.last_loss:.3f}; "
      f"weights in {config.output_path}")
  return result
