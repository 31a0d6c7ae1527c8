"""Alignment Guided Masking (paper section 3.4) and random masking of one example, in TF ops.

Chooses the text tokens to predict (AMLM) and the kaleido patches to camouflage (L3, CP), grey
(L4, G2CM) and blank (L5, B2CM). AGM traverses the aligned <token, patch> pairs whose patch is at
L3..L5 in random order and masks EITHER the token or the patch of each pair (a fair coin; the
other side when the chosen one has no room left), within the token budget and the per-level patch
quotas. The traversal never masks an item while an item aligned to it is masked, so no pair
loses both sides. The remaining token and patch slots are then filled at random, items aligned
to a masked item last (only when nothing else is left). Random masking (or an example without
usable pairs) is exactly the fill alone: independent uniform choices.

Seeds are `(2,)` integer tensors for the stateless random ops, so a choice is reproducible.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from kaleido import config as config_lib
from kaleido import errors
from kaleido.patches import kaleido_grid

AGM_LEVELS = (3, 4, 5)
PATCH_TASKS = ("cp", "g2cm", "b2cm")  # the task that masks patches at each of AGM_LEVELS
_PATCH_LEVELS = kaleido_grid.patch_levels()  # NumPy: no TensorFlow work at import time


@dataclasses.dataclass(frozen=True)
class MaskChoice:
  """Masked positions of one example."""
  token_positions: tf.Tensor  # (max_predictions,) int32 text positions, ascending, 0-padded
  num_tokens: tf.Tensor  # () int32 real entries of token_positions
  cp_positions: tf.Tensor  # (num_cp,) int32 absolute patch indices at L3
  grey_positions: tf.Tensor  # (num_g2cm,) int32 absolute patch indices at L4
  blank_positions: tf.Tensor  # (num_b2cm,) int32 absolute patch indices at L5


def patch_counts(config: config_lib.PretrainingConfig) -> tuple[int, int, int]:
  """Patches chosen at L3, L4, L5."""
  return config.num_cp, config.num_g2cm, config.num_b2cm


def check_config(config: config_lib.PretrainingConfig) -> None:
  """Refuses an unknown masking mode or patch counts a level cannot hold."""
  if config.masking not in config_lib.MASKING_MODES:
    raise errors.KaleidoError(f"Unknown masking {config.masking!r}; use one of "
                              f"{', '.join(config_lib.MASKING_MODES)}.")
  if config.num_cp != 1:
    raise errors.KaleidoError(f"num_cp is {config.num_cp}, but cp_label names one camouflaged "
                              "patch; use num_cp=1.")
  for level, count in zip(AGM_LEVELS, patch_counts(config)):
    if not 0 < count <= level * level:
      raise errors.KaleidoError(
          f"{count} masked patches at level {level} is impossible; pick 1..{level * level}.")


def token_budget(maskable: tf.Tensor, config: config_lib.PretrainingConfig) -> tf.Tensor:
  """Tokens to mask: mask_fraction of the maskable ones rounded, at least 1, at most
  max_predictions and never more than there are."""
  count = tf.reduce_sum(tf.cast(maskable, tf.int32))
  wanted = tf.cast(tf.round(config.mask_fraction * tf.cast(count, tf.float32)), tf.int32)
  return tf.minimum(tf.clip_by_value(wanted, 1, config.max_predictions), count)


def _patch_quotas(config: config_lib.PretrainingConfig) -> tf.Tensor:
  """(55,) patches AGM may mask in the level of each patch: 0 at L1/L2 and for disabled tasks."""
  quotas = [0, 0] + [count if config.is_enabled(task) else 0
                     for task, count in zip(PATCH_TASKS, patch_counts(config))]
  return tf.gather(tf.constant(quotas, tf.int32), _PATCH_LEVELS - 1)


def usable_pairs(maskable: tf.Tensor, align_token: tf.Tensor, align_patch: tf.Tensor) -> tf.Tensor:
  """(A,) bool: pairs of a maskable token and a patch at L3..L5 (padding is -1)."""
  length = maskable.shape[0]
  in_range = ((align_token >= 0) & (align_token < length) &
              (align_patch >= kaleido_grid.LEVEL_STARTS[2]) &
              (align_patch < kaleido_grid.NUM_PATCHES))
  return in_range & tf.gather(maskable, tf.where(in_range, align_token, 0))


def _adjacency(tokens: tf.Tensor, patches: tf.Tensor, usable: tf.Tensor, length: int) -> tf.Tensor:
  """(L, 55) bool: token i and patch j form a usable pair."""
  token_hot = tf.one_hot(tokens, length) * tf.cast(usable, tf.float32)[:, None]
  patch_hot = tf.one_hot(patches, kaleido_grid.NUM_PATCHES)
  return tf.matmul(token_hot, patch_hot, transpose_a=True) > 0


def _count(flags: tf.Tensor) -> tf.Tensor:
  return tf.reduce_sum(tf.cast(flags, tf.int32))


def _traverse_pairs(tokens: tf.Tensor, patches: tf.Tensor, usable: tf.Tensor,
                    adjacency: tf.Tensor, budget: tf.Tensor, quotas: tf.Tensor,
                    seed: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
  """(L,) and (55,) bool: the tokens and patches masked by walking the pairs in random order."""
  length = adjacency.shape[0]
  order_seed, coin_seed = tf.unstack(tf.random.split(seed, 2))
  shuffled = tf.random.stateless_uniform(tf.shape(tokens), order_seed) + tf.cast(usable,
                                                                                tf.float32)
  order = tf.argsort(shuffled, direction="DESCENDING")  # usable pairs first
  tokens, patches = tf.gather(tokens, order), tf.gather(patches, order)
  prefer_token = tf.random.stateless_uniform(tf.shape(tokens), coin_seed) < 0.5
  num_pairs = _count(usable)

  def visit(i, token_masked, patch_masked):
    token, patch = tokens[i], patches[i]
    same_level = tf.equal(_PATCH_LEVELS, tf.gather(_PATCH_LEVELS, patch))
    token_ok = (~token_masked[token] & ~tf.reduce_any(adjacency[token] & patch_masked) &
                (_count(token_masked) < budget))
    patch_ok = (~patch_masked[patch] & ~tf.reduce_any(adjacency[:, patch] & token_masked) &
                (_count(patch_masked & same_level) < quotas[patch]))
    take_token = token_ok & (prefer_token[i] | ~patch_ok)
    take_patch = patch_ok & ~take_token
    token_masked |= (tf.range(length) == token) & take_token
    patch_masked |= (tf.range(kaleido_grid.NUM_PATCHES) == patch) & take_patch
    return i + 1, token_masked, patch_masked

  _, token_masked, patch_masked = tf.while_loop(
      lambda i, *_: i < num_pairs, visit,
      (tf.constant(0), tf.zeros([length], tf.bool), tf.zeros([kaleido_grid.NUM_PATCHES], tf.bool)))
  return token_masked, patch_masked


def _fill(masked: tf.Tensor, candidates: tf.Tensor, blocked: tf.Tensor, k: int,
          seed: tf.Tensor) -> tf.Tensor:
  """(k,) indices: the masked items, then random free candidates, then random blocked ones,
  then non-candidates (for the caller to cut off)."""
  noise = tf.random.stateless_uniform(tf.shape(masked), seed)
  score = tf.where(masked, 3.0,
                   tf.where(candidates, noise + tf.where(blocked, 0.0, 1.0), noise - 1.0))
  return tf.math.top_k(score, k).indices


def _fill_tokens(token_masked: tf.Tensor, maskable: tf.Tensor, blocked: tf.Tensor,
                 budget: tf.Tensor, max_predictions: int, seed: tf.Tensor) -> tf.Tensor:
  """(max_predictions,) ascending positions of `budget` tokens, 0-padded."""
  length = maskable.shape[0]
  k = min(max_predictions, length)
  positions = _fill(token_masked, maskable, blocked, k, seed)
  real = tf.range(k) < budget
  positions = tf.sort(tf.where(real, positions, length))
  return tf.pad(tf.where(real, positions, 0), [[0, max_predictions - k]])


def choose_masks(maskable: tf.Tensor, align_token: tf.Tensor, align_patch: tf.Tensor,
                 config: config_lib.PretrainingConfig, seed: tf.Tensor) -> MaskChoice:
  """Masked tokens and patches of one example.

  `maskable` (L,) bool marks real tokens other than [CLS]/[SEP]; `align_token`/`align_patch` (A,)
  are the pre-alignment pairs (-1 padded), ignored unless `config.masking == "agm"`. A disabled
  patch task takes no part in AGM; its positions are still drawn at random to keep the shapes.
  """
  check_config(config)
  length = maskable.shape[0]
  traverse_seed, token_seed, *level_seeds = tf.unstack(tf.random.split(seed, 5))
  budget = token_budget(maskable, config)
  usable = usable_pairs(maskable, align_token, align_patch)
  if config.masking == "random":
    usable = tf.zeros_like(usable)
  adjacency = _adjacency(align_token, align_patch, usable, length)
  token_masked, patch_masked = _traverse_pairs(
      tf.where(usable, align_token, 0), tf.where(usable, align_patch, 0), usable, adjacency,
      budget, _patch_quotas(config), traverse_seed)
  token_blocked = tf.reduce_any(adjacency & patch_masked[None, :], axis=1)
  token_positions = _fill_tokens(token_masked, maskable, token_blocked, budget,
                                 config.max_predictions, token_seed)
  real = tf.range(config.max_predictions) < budget
  token_masked = tf.reduce_any((token_positions[:, None] == tf.range(length)) & real[:, None],
                               axis=0)
  patch_blocked = tf.reduce_any(adjacency & token_masked[:, None], axis=0)
  positions = []
  for level, count, level_seed in zip(AGM_LEVELS, patch_counts(config), level_seeds):
    cells = kaleido_grid.level_slice(level)
    chosen = _fill(patch_masked[cells], tf.ones([level * level], tf.bool), patch_blocked[cells],
                   count, level_seed)
    positions.append(tf.sort(chosen) + cells.start)
  return MaskChoice(token_positions=token_positions, num_tokens=budget, cp_positions=positions[0],
                    grey_positions=positions[1], blank_positions=positions[2])

