"""The contract between the pre-training input pipeline and the model: keys, shapes, meanings.

A pre-training batch (B examples, L = max_seq_length text positions, P = patch size) is a dict:

| key | shape, dtype | meaning |
|---|---|---|
| input_word_ids | (B, L) int32 | `[CLS] text [SEP]` + padding, after text masking (80/10/10) |
| input_mask | (B, L) int32 | 1 on real text tokens |
| patches | (B, 55, P, P, 3) uint8 | kaleido patches after the pixel transforms: L1 rotated (RR), L2 permuted (JPS), one L3 patch camouflaged (CP), L4 patches greyed (G2CM) |
| patch_boxes | (B, 55, 5) float32 | `[x1, x2, y1, y2, w*h]` in canonical order (boxes are never permuted) |
| blank_positions | (B, 3) int32 | absolute patch indices (30..54) whose features the model zeroes (B2CM) |
| grey_positions | (B, 2) int32 | absolute patch indices (14..29) that were greyed (G2CM) |
| grey_targets | (B, 2, P, P, 3) uint8 | the untouched pixels of the greyed patches; their features are the G2CM targets |
| patch_features, grey_target_features | (B, 55, F), (B, 2, F) float16 | with the feature cache, in place of patches and grey_targets: the frozen patch CNN's features of those pixels (kaleido.feature_cache) |
| masked_lm_positions | (B, 10) int32 | text positions whose token is predicted (0 where padding) |
| masked_lm_ids | (B, 10) int32 | the original token ids there |
| masked_lm_weights | (B, 10) float32 | 1 for a real prediction, 0 for padding |
| itm_label | (B,) int32 | 1: text and image of the same product; 0: a negative pair |
| rr_label | (B,) int32 | rotation of the L1 patch: 0/1/2/3 = 0/90/180/270 degrees counter-clockwise |
| jps_label | (B,) int32 | index into `JIGSAW_PERMUTATIONS` of the permutation applied to L2 |
| cp_label | (B,) int32 | which L3 patch (0..8) was replaced by another product's |
| cp_weight | (B,) float32 | 1 where that patch was really replaced; 0 when the batch held no other product or CP is off |
| product_key | (B,) int64 | a hash of the text's product id: equal keys, same product (ITC never counts them as negatives) |

A disabled task leaves its inputs untouched and its label 0; its loss weight is 0. All losses but
ITM count only on matched pairs (itm_label == 1).

Model outputs (dict): mlm_logits (B, 10, V), itm_logits (B, 2), rr_logits (B, 4),
jps_logits (B, 24), cp_logits (B, 9), g2cm_predictions / g2cm_targets (B, 2, 2048),
b2cm_predictions / b2cm_targets (B, 3, 2048); with ITC also itc_text and itc_image (B, D) unit
vectors and the scalar itc_logit_scale.
"""

import tensorflow as tf

from kaleido.patches import kaleido_grid

# Jigsaw label k means: the patch shown at L2 slot i is original patch JIGSAW_PERMUTATIONS[k][i].
JIGSAW_PERMUTATIONS = kaleido_grid.JIGSAW_PERMUTATIONS

TEXT_KEYS = ("input_word_ids", "input_mask", "masked_lm_positions", "masked_lm_ids",
             "masked_lm_weights")
IMAGE_KEYS = ("patches", "patch_boxes", "blank_positions", "grey_positions", "grey_targets",
              "rr_label", "jps_label", "cp_label", "cp_weight")
# The pixel keys and the keys of their cached features (kaleido.feature_cache).
FEATURE_KEYS = {"patches": "patch_features", "grey_targets": "grey_target_features"}


def cached_keys(keys: tuple[str, ...], cached: bool) -> tuple[str, ...]:
  """`keys` as a batch holds them: pixel keys renamed to their feature keys when `cached`."""
  return tuple(FEATURE_KEYS.get(key, key) for key in keys) if cached else keys


def is_cached(batch: dict) -> bool:
  """Whether a batch or example holds cached patch features instead of pixels."""
  return FEATURE_KEYS["patches"] in batch


# Keys whose second axis runs over the text positions; `trim_text` cuts them together.
TEXT_POSITION_KEYS = ("input_word_ids", "input_mask", "caption_ids", "caption_weights")
TEXT_LENGTH_MULTIPLE = 16


def trim_text(batch: dict[str, tf.Tensor],
              multiple: int = TEXT_LENGTH_MULTIPLE) -> dict[str, tf.Tensor]:
  """The batch with its text positions cut to its longest text rounded up to a multiple of
  `multiple` (never beyond the padded length). No position attends to padding, so every real
  position's outputs stay the same; the encoder's work falls with the padding (product names
  are a fifth of the demo's 64 positions). Batches then differ in length (a few lengths)."""
  mask = batch["input_mask"]
  longest = tf.maximum(tf.reduce_max(tf.reduce_sum(tf.cast(mask, tf.int32), axis=1)), 1)
  length = tf.minimum(tf.shape(mask)[1], (longest + multiple - 1) // multiple * multiple)
  return {key: value[:, :length] if key in TEXT_POSITION_KEYS else value
          for key, value in batch.items()}


def product_key(product_id: tf.Tensor) -> tf.Tensor:
  """(B,) string product ids -> (B,) int64 keys, equal for equal ids (collisions ~2**-62)."""
  return tf.strings.to_hash_bucket_fast(product_id, 2**62)
