"""Patch projections that start in the word-embedding space of a pretrained BERT.

A fresh level projection hands the pretrained layers patch vectors from nowhere in the space
they were trained to read. Here every level's projection starts as one linear map, fitted by
ridge regression on the training folder: from the patch features of each product crop (its L1
patch) to the mean word embedding of the product's text. A patch then enters where the words
that describe such a product lie, and the pretrained layers can relate it to the text from the
first step (issue #12; BUILD_NOTES.md, "A pretrained start").
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras

from kaleido import errors
from kaleido.dataloaders import patch_cnn_words as word_inputs
from kaleido.text import vocab as vocab_lib


def fit_ridge(features: np.ndarray, targets: np.ndarray, l2: float) -> np.ndarray:
  """(F, H) W minimising |features W - targets|^2 + lam |W|^2, lam = l2 x the mean squared
  feature (so `l2` does not depend on the features' scale); no intercept, as the projections
  have no bias."""
  gram = features.T @ features
  lam = l2 * np.trace(gram) / gram.shape[0]
  return np.linalg.solve(gram + lam * np.eye(gram.shape[0]), features.T @ targets)


def r_squared(predicted: np.ndarray, targets: np.ndarray) -> float:
  """The share of the targets' variance (about their mean) the prediction explains."""
  residual = np.sum((targets - predicted) ** 2)
  return 1.0 - residual / np.sum((targets - targets.mean(axis=0)) ** 2)


def crop_features_and_words(model: tf_keras.Model, folder: str, vocab_file: str,
                            batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
  """(N, F) patch features of the product crops of the prepared `folder` and (N, H) mean word
  embeddings (the model's word table) of their texts' distinct words, special tokens excluded."""
  tokens = vocab_lib.read_vocab(vocab_file)
  excluded = tuple(tokens.index(token) for token in vocab_lib.SPECIAL_TOKENS)
  word_table = model.backbone.encoder.embeddings.word_embeddings.embeddings
  embedder = model.backbone.patch_embedder
  features, words = [], []
  for batch in word_inputs.word_examples(folder, len(tokens), excluded).batch(batch_size):
    features.append(embedder(batch["patches"]).numpy())
    words.append(tf.matmul(batch["targets"], word_table).numpy())
  if not features:
    raise errors.KaleidoError(f"{folder} holds no examples to fit the patch projections on; "
                              "pass a prepared training folder.")
  return np.concatenate(features), np.concatenate(words)


def initialize_patch_projections(model: tf_keras.Model, folder: str, vocab_file: str,
                                 l2: float = 0.1) -> str:
  """Sets every level projection of `model`'s embeddings to the ridge map from crop features to
  mean word embeddings (see the module docstring); returns a one-line note with its fit."""
  features, words = crop_features_and_words(model, folder, vocab_file)
  kernel = fit_ridge(features.astype(np.float64), words.astype(np.float64), l2)
  for projection in model.backbone.encoder.embeddings.level_projections:
    projection.kernel.assign(kernel.astype(np.float32))
  fit = r_squared(features @ kernel, words)
  return (f"Patch projections from the word embeddings: a ridge map fitted on {len(features)} "
          f"product crops of {folder} (R^2 {fit:.2f}).")
