"""Pixel transforms and labels of the kaleido tasks (paper section 3.6, Fig. 5) and ITM negatives.

Per example (before batching): RR rotates the L1 patch, JPS permutes the L2 patches, G2CM greys
the chosen L4 patches, B2CM records the chosen L5 patches (the model zeroes their features).
Per batch: CP replaces the chosen L3 patch by the same-index patch of another product, then ITM
swaps the whole image side (`features.IMAGE_KEYS`) of some examples with another product's.
A disabled task leaves the pixels untouched and its label 0. Seeds are `(2,)` integer tensors.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf

from kaleido import config as config_lib
from kaleido.dataloaders import features
from kaleido.masking import agm
from kaleido.patches import kaleido_grid

_JIGSAW = np.asarray(features.JIGSAW_PERMUTATIONS, np.int32)  # no TensorFlow work at import
_L2 = kaleido_grid.level_slice(2)
_L3_START = kaleido_grid.LEVEL_STARTS[2]


def rotate_l1(patches: tf.Tensor, rotation: tf.Tensor) -> tf.Tensor:
  """(55, P, P, 3) patches with the L1 patch turned `rotation` x 90 degrees counter-clockwise."""
  return tf.concat([tf.image.rot90(patches[:1], rotation), patches[1:]], axis=0)


def permute_l2(patches: tf.Tensor, label: tf.Tensor) -> tf.Tensor:
  """L2 slot i shows the original L2 patch `JIGSAW_PERMUTATIONS[label][i]`; boxes are not moved."""
  shuffled = tf.gather(patches[_L2], tf.gather(_JIGSAW, label))
  return tf.concat([patches[:_L2.start], shuffled, patches[_L2.stop:]], axis=0)


def grey(pixels: tf.Tensor) -> tf.Tensor:
  """(..., 3) uint8 -> luminance (ITU-R 601) replicated to 3 channels, uint8."""
  luminance = tf.image.rgb_to_grayscale(tf.cast(pixels, tf.float32))
  luminance = tf.cast(tf.clip_by_value(tf.round(luminance), 0.0, 255.0), tf.uint8)
  return tf.repeat(luminance, 3, axis=-1)


def grey_patches(patches: tf.Tensor, positions: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
  """Greys `patches[positions]`; returns the patches and the original pixels there."""
  originals = tf.gather(patches, positions)
  return tf.tensor_scatter_nd_update(patches, positions[:, None], grey(originals)), originals


def _uniform_label(num_classes: int, enabled: bool, seed: tf.Tensor) -> tf.Tensor:
  """A random label in 0..num_classes-1, or 0 for a disabled task."""
  if not enabled:
    return tf.constant(0, tf.int32)
  return tf.random.stateless_uniform([], seed, maxval=num_classes, dtype=tf.int32)


def example_image(patches: tf.Tensor, choice: agm.MaskChoice, config: config_lib.PretrainingConfig,
                  seed: tf.Tensor) -> dict[str, tf.Tensor]:
  """The per-example image side: RR, JPS, G2CM pixels and all kaleido labels and positions.

  cp_label is chosen here (the L3 patch of `choice`); `camouflage` changes its pixels per batch.
  """
  rotation_seed, jigsaw_seed = tf.unstack(tf.random.split(seed, 2))
  rr_label = _uniform_label(4, config.is_enabled("rr"), rotation_seed)
  jps_label = _uniform_label(len(features.JIGSAW_PERMUTATIONS), config.is_enabled("jps"),
                             jigsaw_seed)
  patches = permute_l2(rotate_l1(patches, rr_label), jps_label)
  greyed, grey_targets = grey_patches(patches, choice.grey_positions)
  cp_label = choice.cp_positions[0] - _L3_START if config.is_enabled("cp") else tf.constant(0)
  return {
      "patches": greyed if config.is_enabled("g2cm") else patches,
      "grey_positions": choice.grey_positions,
      "grey_targets": grey_targets,
      "blank_positions": choice.blank_positions,
      "rr_label": rr_label,
      "jps_label": jps_label,
      "cp_label": cp_label,
  }


def pick_partners(product_id: tf.Tensor, subcategory_id: tf.Tensor, same_subcategory: bool,
                  seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
  """For each example of a batch, a random other example of a different product.

  With `same_subcategory`, one of the same subcategory when there is one. Returns the (B,)
  partner indices and (B,) whether a different product exists (else the partner is itself).
  """
  different = product_id[:, None] != product_id[None, :]
  size = tf.shape(product_id)[0]
  score = tf.random.stateless_uniform([size, size], seed)
  if same_subcategory:
    score += tf.cast(subcategory_id[:, None] == subcategory_id[None, :], tf.float32)
  score = tf.where(different, score, -1.0)
  found = tf.reduce_any(different, axis=1)
  partner = tf.where(found, tf.argmax(score, axis=1, output_type=tf.int32), tf.range(size))
  return partner, found


def camouflage(batch: dict[str, tf.Tensor], seed: tf.Tensor) -> dict[str, tf.Tensor]:
  """CP: the L3 patch `cp_label` of each example <- the same patch of another product's image.

  An example whose batch holds no other product keeps its patch and gets cp_weight 0.
  """
  partner, found = pick_partners(batch["product_id"], batch["subcategory_id"], False, seed)
  index = _L3_START + batch["cp_label"]
  donated = tf.gather_nd(batch["patches"], tf.stack([partner, index], axis=1))
  own = tf.stack([tf.range(tf.shape(index)[0]), index], axis=1)
  return {**batch, "patches": tf.tensor_scatter_nd_update(batch["patches"], own, donated),
          "cp_weight": tf.cast(found, tf.float32)}


def negative_pairs(batch: dict[str, tf.Tensor], fraction: float, same_subcategory: bool,
                   image_keys: Sequence[str], seed: tf.Tensor) -> dict[str, tf.Tensor]:
  """round(fraction * B) random examples of a batch get another product's image side.

  The `image_keys` of a negative come from its partner (see `pick_partners`); itm_label is 1 for
  a matched pair, 0 for a negative. An example whose batch holds no other product stays matched.
  """
  pick_seed, partner_seed = tf.unstack(tf.random.split(seed, 2))
  size = tf.shape(batch["product_id"])[0]
  num_negatives = tf.cast(tf.round(fraction * tf.cast(size, tf.float32)), tf.int32)
  rank = tf.argsort(tf.argsort(tf.random.stateless_uniform([size], pick_seed)))
  partner, found = pick_partners(batch["product_id"], batch["subcategory_id"],
                                 same_subcategory, partner_seed)
  negative = (rank < num_negatives) & found
  source = tf.where(negative, partner, tf.range(size))
  swapped = {key: tf.gather(batch[key], source) for key in image_keys}
  return {**batch, **swapped, "itm_label": 1 - tf.cast(negative, tf.int32)}


def itm_negatives(batch: dict[str, tf.Tensor], config: config_lib.PretrainingConfig,
                  seed: tf.Tensor) -> dict[str, tf.Tensor]:
  """ITM: `negative_pairs` over the whole image side of the contract.

  Also zeroes the masked_lm_weights of negatives, since the other losses count only on matched
  pairs.
  """
  batch = negative_pairs(batch, config.itm_negative_fraction, config.hard_negatives,
                         features.IMAGE_KEYS, seed)
  matched = tf.cast(batch["itm_label"], tf.float32)[:, None]
  return {**batch, "masked_lm_weights": batch["masked_lm_weights"] * matched}


def batch_transforms(batch: dict[str, tf.Tensor], config: config_lib.PretrainingConfig,
                     seed: tf.Tensor) -> dict[str, tf.Tensor]:
  """CP camouflage then ITM negatives, each only when enabled; itm_label is always set."""
  camouflage_seed, itm_seed = tf.unstack(tf.random.split(seed, 2))
  if config.is_enabled("cp"):
    batch = camouflage(batch, camouflage_seed)
  else:
    batch = {**batch, "cp_weight": tf.zeros_like(batch["cp_label"], tf.float32)}
  if config.is_enabled("itm"):
    return itm_negatives(batch, config, itm_seed)
  return {**batch, "itm_label": tf.ones_like(batch["cp_label"])}
