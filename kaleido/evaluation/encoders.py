"""The two retrieval stages of a restored retrieval model, batched, NumPy in and out.

First stage: the ITC head's independent text and image embeddings (unit vectors, so a dot
product is a cosine). Second stage: the cross-encoder's ITM logit margin of a (text, image) pair.
Both read the image through its cached patch features, so the patch embedder (the costly part
with ResNet-50) runs once per image.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from kaleido import errors
from kaleido.dataloaders import features
from kaleido.model import heads as heads_lib
from kaleido.model import kaleido_bert
from kaleido.patches import kaleido_grid


class RetrievalEncoders:
  """`model` (a KaleidoMatcher) as batched NumPy functions."""

  def __init__(self, model: kaleido_bert.KaleidoMatcher, batch_size: int):
    self.model = model
    self.batch_size = batch_size
    backbone = model.backbone
    self._embed = tf.function(reduce_retracing=True)(
        lambda patches: backbone.patch_embedder(patches, training=False))
    self._margin = tf.function(reduce_retracing=True)(
        lambda inputs: heads_lib.itm_margin(model.itm(backbone(inputs, training=False)[
            "pooled_output"])))
    self._contrastive = None
    if model.contrastive is not None:
      self._contrastive = tf.function(reduce_retracing=True)(
          lambda inputs: kaleido_bert.contrastive_embeddings(
              backbone, model.contrastive, model.visible_patches, inputs))

  @property
  def has_first_stage(self) -> bool:
    """Whether the model has the ITC head that gives independent embeddings."""
    return self._contrastive is not None

  @property
  def embedding_size(self) -> int:
    return self.model.contrastive.text_projection.units if self.has_first_stage else 0

  def patch_features(self, patches: np.ndarray) -> np.ndarray:
    """(n, 55, S, S, 3) uint8 patches (n >= 1) -> (n, 55, F) float32 features."""
    return np.concatenate([self._embed(tf.constant(patches[start:start + self.batch_size]))
                           .numpy() for start in range(0, len(patches), self.batch_size)])

  def _batches(self, function, word_ids, input_mask, patch_boxes, patch_features):
    """`function` on each batch of pairs, its text cut to its longest (features.trim_text: the
    same scores, less work)."""
    results = []
    for start in range(0, len(word_ids), self.batch_size):
      rows = slice(start, start + self.batch_size)
      text = features.trim_text({"input_word_ids": tf.constant(word_ids[rows], tf.int32),
                                 "input_mask": tf.constant(input_mask[rows], tf.int32)})
      results.append(function({
          **text,
          "patch_boxes": tf.constant(patch_boxes[rows], tf.float32),
          "patch_features": tf.constant(patch_features[rows], tf.float32)}))
    return results

  def margins(self, word_ids: np.ndarray, input_mask: np.ndarray, patch_boxes: np.ndarray,
              patch_features: np.ndarray) -> np.ndarray:
    """(n,) ITM log-odds z_matched - z_unmatched of each (text k, image k) pair."""
    results = self._batches(self._margin, word_ids, input_mask, patch_boxes, patch_features)
    return (np.concatenate([tf.cast(r, tf.float32).numpy() for r in results]) if results
            else np.zeros([0], np.float32))

  def embeddings(self, word_ids: np.ndarray, input_mask: np.ndarray, patch_boxes: np.ndarray,
                 patch_features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """((n, D) text embeddings of the texts, (n, D) image embeddings of the images): row k's
    text embedding does not depend on image k and the other way round, so either side may be a
    placeholder (`empty_texts`, `empty_images`)."""
    self.require_first_stage()
    results = self._batches(self._contrastive, word_ids, input_mask, patch_boxes,
                            patch_features)
    if not results:
      empty = np.zeros([0, self.embedding_size], np.float32)
      return empty, empty
    return (np.concatenate([r["itc_text"].numpy() for r in results]),
            np.concatenate([r["itc_image"].numpy() for r in results]))

  def require_first_stage(self) -> None:
    """One sentence naming the fix when the model has no ITC head."""
    if not self.has_first_stage:
      raise errors.KaleidoError(
          "The checkpoint has no contrastive (ITC) head, so it gives no independent embeddings "
          "for a first search stage; fine-tune retrieval with --itc_weight=1 (or pre-train with "
          "--tasks=...,itc), or rank with the cross-encoder alone (--rerank=-1).")


def empty_texts(count: int, length: int) -> tuple[np.ndarray, np.ndarray]:
  """(word_ids, input_mask) of `count` empty texts: the text side of image-only passes."""
  return np.zeros([count, length], np.int32), np.zeros([count, length], np.int32)


def empty_images(count: int, num_patches: int, feature_size: int) -> tuple[np.ndarray, np.ndarray]:
  """(patch_boxes, patch_features) of `count` blank images: the image side of text-only passes."""
  return (np.zeros([count, num_patches, kaleido_grid.BOX_DIM], np.float32),
          np.zeros([count, num_patches, feature_size], np.float32))
