"""Kaleido transforms and labels (paper section 3.6, Fig. 5) and ITM negatives.

Per example (before batching): RR turns the L1 patch, JPS permutes the L2 patches, G2CM greys
the chosen L4 patches, B2CM records the chosen L5 patches (the model zeroes their features); the
image is read from the example's variant table (kaleido.patches.variants), of pixels or of their
cached features, so both give the same image. Per batch: CP replaces the chosen L3 patch by the
same-index patch of another product, then ITM swaps the whole image side (`features.IMAGE_KEYS`)
of some examples with another product's. A disabled task leaves the image untouched and its
label 0. Seeds are `(2,)` integer tensors.
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from kaleido import config as config_lib
from kaleido.dataloaders import features
from kaleido.masking import agm
from kaleido.patches import kaleido_grid
from kaleido.patches import variants

_L3_START = kaleido_grid.LEVEL_STARTS[2]


def _uniform_label(num_classes: int, enabled: bool, seed: tf.Tensor) -> tf.Tensor:
  """A random label in 0..num_classes-1, or 0 for a disabled task."""
  if not enabled:
    return tf.constant(0, tf.int32)
  return tf.random.stateless_uniform([], seed, maxval=num_classes, dtype=tf.int32)


def example_image(table: tf.Tensor, choice: agm.MaskChoice, config: config_lib.PretrainingConfig,
                  seed: tf.Tensor, cached: bool = False) -> dict[str, tf.Tensor]:
  """The per-example image side from a (NUM_VARIANTS, ...) variant table: the RR, JPS and G2CM
  image, the originals of the greyed patches, and all kaleido labels and positions. Pixel
  tables give `patches` and `grey_targets`, feature tables (`cached`) their feature keys.

  cp_label is chosen here (the L3 patch of `choice`); `camouflage` changes that patch per batch.
  """
  rotation_seed, jigsaw_seed = tf.unstack(tf.random.split(seed, 2))
  rr_label = _uniform_label(kaleido_grid.NUM_ROTATIONS, config.is_enabled("rr"), rotation_seed)
  jps_label = _uniform_label(len(features.JIGSAW_PERMUTATIONS), config.is_enabled("jps"),
                             jigsaw_seed)
  rows = variants.variant_rows(rr_label, jps_label, choice.grey_positions,
                               config.is_enabled("g2cm"))
  cp_label = choice.cp_positions[0] - _L3_START if config.is_enabled("cp") else tf.constant(0)
  patches_key, grey_key = features.cached_keys(("patches", "grey_targets"), cached)
  return {
      patches_key: tf.gather(table, rows),
      "grey_positions": choice.grey_positions,
      grey_key: tf.gather(table, choice.grey_positions),
      "blank_positions": choice.blank_positions,
      "rr_label": rr_label,
      "jps_label": jps_label,
      "cp_label": cp_label,
  }


def pick_partners(product_id: tf.Tensor, subcategory_id: tf.Tensor,
                  same_subcategory: float | bool, seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
  """For each example of a batch, a random other example of a different product.

  `same_subcategory` (a share in [0, 1]; True is 1): that share of the examples, drawn at random,
  get one of the same subcategory when the batch has one; the others any other product. Returns
  the (B,) partner indices and (B,) whether a different product exists (else the partner is
  itself).
  """
  different = product_id[:, None] != product_id[None, :]
  size = tf.shape(product_id)[0]
  score = tf.random.stateless_uniform([size, size], seed)
  share = float(same_subcategory)
  if share > 0:
    same = tf.cast(subcategory_id[:, None] == subcategory_id[None, :], tf.float32)
    if share < 1:
      chooser = tf.random.stateless_uniform([size], tf.random.experimental.stateless_fold_in(
          seed, 1))
      same *= tf.cast(chooser < share, tf.float32)[:, None]
    score += same
  score = tf.where(different, score, -1.0)
  found = tf.reduce_any(different, axis=1)
  partner = tf.where(found, tf.argmax(score, axis=1, output_type=tf.int32), tf.range(size))
  return partner, found


def camouflage(batch: dict[str, tf.Tensor], seed: tf.Tensor,
               patches_key: str = "patches") -> dict[str, tf.Tensor]:
  """CP: the L3 patch `cp_label` of each example <- the same patch of another product's image
  (`patches_key`: its pixels, or its features).

  An example whose batch holds no other product keeps its patch and gets cp_weight 0.
  """
  partner, found = pick_partners(batch["product_id"], batch["subcategory_id"], False, seed)
  index = _L3_START + batch["cp_label"]
  patches = batch[patches_key]
  donated = tf.gather_nd(patches, tf.stack([partner, index], axis=1))
  own = tf.stack([tf.range(tf.shape(index)[0]), index], axis=1)
  return {**batch, patches_key: tf.tensor_scatter_nd_update(patches, own, donated),
          "cp_weight": tf.cast(found, tf.float32)}


def negative_pairs(batch: dict[str, tf.Tensor], fraction: float,
                   same_subcategory: float | bool, image_keys: Sequence[str],
                   seed: tf.Tensor) -> dict[str, tf.Tensor]:
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
                  seed: tf.Tensor, cached: bool = False) -> dict[str, tf.Tensor]:
  """ITM: `negative_pairs` over the whole image side of the contract (pixels, or `cached`
  features).

  Also zeroes the masked_lm_weights of negatives, since the other losses count only on matched
  pairs.
  """
  batch = negative_pairs(batch, config.itm_negative_fraction, config.hard_negatives,
                         features.cached_keys(features.IMAGE_KEYS, cached), seed)
  matched = tf.cast(batch["itm_label"], tf.float32)[:, None]
  return {**batch, "masked_lm_weights": batch["masked_lm_weights"] * matched}


def batch_transforms(batch: dict[str, tf.Tensor], config: config_lib.PretrainingConfig,
                     seed: tf.Tensor, cached: bool = False) -> dict[str, tf.Tensor]:
  """CP camouflage then ITM negatives, each only when enabled (and not made in the training
  step: itm_negatives_per_positive); itm_label is always set."""
  camouflage_seed, itm_seed = tf.unstack(tf.random.split(seed, 2))
  if config.is_enabled("cp"):
    batch = camouflage(batch, camouflage_seed, features.cached_keys(("patches",), cached)[0])
  else:
    batch = {**batch, "cp_weight": tf.zeros_like(batch["cp_label"], tf.float32)}
  if config.is_enabled("itm") and not config.itm_negatives_per_positive:
    return itm_negatives(batch, config, itm_seed, cached)
  return {**batch, "itm_label": tf.ones_like(batch["cp_label"])}
