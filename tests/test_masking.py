"""Masking: AGM and random choices of tokens and patches, and the 80/10/10 text corruption."""

import numpy as np
import pytest
import tensorflow as tf

from kaleido import config as config_lib
from kaleido import errors
from kaleido.masking import agm
from kaleido.masking import text_masking
from kaleido.text import vocab as vocab_lib

IDS = vocab_lib.SpecialIds(pad_id=0, unk_id=1, cls_id=2, sep_id=3, mask_id=4, vocab_size=1000)
LENGTH = 16
NUM_WORDS = 12  # [CLS] + 12 words + [SEP] + 2 padding: budget round(0.15 * 12) = 2
ALIGNMENTS = 8


def _text(num_words: int = NUM_WORDS) -> tuple[np.ndarray, np.ndarray]:
  words = np.zeros(LENGTH, np.int32)
  words[:num_words + 2] = [IDS.cls_id] + list(range(100, 100 + num_words)) + [IDS.sep_id]
  return words, (words != IDS.pad_id).astype(np.int32)


def _pairs(pairs: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
  tokens = np.full(ALIGNMENTS, -1, np.int32)
  patches = np.full(ALIGNMENTS, -1, np.int32)
  for i, (token, patch) in enumerate(pairs):
    tokens[i], patches[i] = token, patch
  return tokens, patches


def _draws(pairs: list[tuple[int, int]], config: config_lib.PretrainingConfig = config_lib.PretrainingConfig(),
           num_draws: int = 200, num_words: int = NUM_WORDS) -> dict[str, np.ndarray]:
  """`num_draws` choices for seeds (0, 0) .. (num_draws - 1, 0), stacked."""
  words, mask = _text(num_words)
  maskable = text_masking.maskable_tokens(tf.constant(words), tf.constant(mask), IDS)
  tokens, patches = (tf.constant(values) for values in _pairs(pairs))

  def choose(seed):
    return dict(vars(agm.choose_masks(maskable, tokens, patches, config,
                                      tf.stack([seed, tf.constant(0, tf.int64)]))))

  dataset = tf.data.Dataset.range(num_draws).map(choose).batch(num_draws)
  return next(dataset.as_numpy_iterator())


def _masked_tokens(draws: dict[str, np.ndarray]) -> list[set[int]]:
  return [set(row[:count].tolist()) for row, count in zip(draws["token_positions"],
                                                           draws["num_tokens"])]


def _masked_patches(draws: dict[str, np.ndarray]) -> list[set[int]]:
  stacked = np.concatenate([draws["cp_positions"], draws["grey_positions"],
                            draws["blank_positions"]], axis=1)
  return [set(row.tolist()) for row in stacked]


def test_maskable_tokens_exclude_cls_sep_and_padding():
  words, mask = _text()
  maskable = text_masking.maskable_tokens(tf.constant(words), tf.constant(mask), IDS).numpy()
  assert maskable.tolist() == [False] + [True] * NUM_WORDS + [False] * 3


@pytest.mark.parametrize("num_maskable,expected", [(0, 0), (1, 1), (3, 1), (12, 2), (63, 9),
                                                   (80, 10)])
def test_token_budget(num_maskable, expected):
  maskable = tf.range(100) < num_maskable
  assert int(agm.token_budget(maskable, config_lib.PretrainingConfig())) == expected


@pytest.mark.parametrize("masking", ["agm", "random"])
def test_counts_levels_and_token_budget(masking):
  draws = _draws([(1, 5), (2, 20), (3, 40)], config_lib.PretrainingConfig(masking=masking))
  assert draws["cp_positions"].shape == (200, 1)
  assert ((draws["cp_positions"] >= 5) & (draws["cp_positions"] <= 13)).all()
  assert ((draws["grey_positions"] >= 14) & (draws["grey_positions"] <= 29)).all()
  assert ((draws["blank_positions"] >= 30) & (draws["blank_positions"] <= 54)).all()
  assert all(len(row) == 6 for row in _masked_patches(draws))  # distinct: 1 + 2 + 3
  assert (draws["num_tokens"] == 2).all()
  positions = draws["token_positions"]
  assert positions.shape == (200, 10) and (positions[:, 2:] == 0).all()
  assert ((positions[:, 0] >= 1) & (positions[:, 1] <= NUM_WORDS) &
          (positions[:, 0] < positions[:, 1])).all()  # ascending, no [CLS]/[SEP]/padding
  # Every maskable token and every L5 patch is drawn at some point.
  assert set(positions[:, :2].ravel()) == set(range(1, NUM_WORDS + 1))
  assert set(draws["blank_positions"].ravel()) == set(range(30, 55))


def test_short_texts_mask_at_least_one_token_and_empty_ones_none():
  assert (_draws([], num_draws=20, num_words=1)["token_positions"][:, 0] == 1).all()
  empty = _draws([(1, 40)], num_draws=20, num_words=0)
  assert (empty["num_tokens"] == 0).all() and (empty["token_positions"] == 0).all()


def test_agm_uses_every_pair_on_exactly_one_side():
  pairs = [(1, 31), (5, 40), (9, 52)]  # 3 pairs at L5: quota 3 patches, budget 2 tokens
  draws = _draws(pairs)
  token_sides = np.zeros(len(pairs))
  for tokens, patches in zip(_masked_tokens(draws), _masked_patches(draws)):
    for i, (token, patch) in enumerate(pairs):
      assert (token in tokens) != (patch in patches)
      token_sides[i] += token in tokens
  # Each side is chosen by a coin: both occur for every pair.
  assert (token_sides > 30).all() and (token_sides < 170).all()


def test_agm_masks_aligned_items_before_unaligned_ones():
  pairs = [(t, p) for t, p in zip(range(1, 9), (16, 17, 18, 19, 20, 21, 22, 23))]  # 8 at L4
  draws = _draws(pairs)
  for tokens, patches in zip(_masked_tokens(draws), _masked_patches(draws)):
    grey = {p for p in patches if 14 <= p <= 29}
    assert tokens <= set(range(1, 9)) and grey <= set(range(16, 24))
    assert len(tokens) + len(grey) == 4  # 2 tokens + 2 L4 patches, all from pairs
    assert not any(t in tokens and p in patches for t, p in pairs)


def test_agm_never_masks_both_sides_of_a_pair_when_items_share_partners():
  pairs = [(1, 40), (2, 40), (2, 41), (3, 8), (3, 9), (4, 9)]
  draws = _draws(pairs)
  for tokens, patches in zip(_masked_tokens(draws), _masked_patches(draws)):
    assert not any(t in tokens and p in patches for t, p in pairs)


def test_agm_skips_disabled_patch_tasks():
  config = config_lib.PretrainingConfig(enabled=("amlm", "itm", "rr", "jps", "cp", "b2cm"))
  draws = _draws([(1, 20), (2, 21)], config)
  # G2CM is off, so both L4 pairs are masked on the token side; grey positions keep their shape.
  assert all(tokens == {1, 2} for tokens in _masked_tokens(draws))
  assert draws["grey_positions"].shape == (200, 2)


def test_random_masking_ignores_alignments_exactly():
  pairs = [(1, 31), (5, 40), (9, 52), (2, 6)]
  random_with_pairs = _draws(pairs, config_lib.PretrainingConfig(masking="random"))
  agm_without_pairs = _draws([], config_lib.PretrainingConfig(masking="agm"))
  for key, values in random_with_pairs.items():
    np.testing.assert_array_equal(values, agm_without_pairs[key], err_msg=key)
  # Unusable pairs (L1/L2 patches, [CLS], padding) leave AGM equal to random masking too.
  unusable = _draws([(1, 0), (2, 3), (0, 40), (15, 41)])
  for key, values in unusable.items():
    np.testing.assert_array_equal(values, agm_without_pairs[key], err_msg=key)


def test_bad_masking_settings_are_refused():
  for config in (config_lib.PretrainingConfig(masking="bert"), config_lib.PretrainingConfig(num_cp=10),
                 config_lib.PretrainingConfig(num_b2cm=0)):
    with pytest.raises(errors.KaleidoError):
      agm.check_config(config)


def test_text_corruption_80_10_10():
  words, _ = _text()
  positions = tf.constant([1, 2, 3, 4, 5, 6, 7, 8, 0, 0], tf.int32)

  def corrupt(seed):
    return text_masking.mask_tokens(tf.constant(words), positions, tf.constant(8), IDS,
                                    tf.stack([seed, tf.constant(7, tf.int64)]))

  num_draws = 800
  out = next(tf.data.Dataset.range(num_draws).map(corrupt).batch(num_draws).as_numpy_iterator())
  np.testing.assert_array_equal(out["masked_lm_positions"][0], positions.numpy())
  expected_ids = np.where(np.arange(10) < 8, words[positions.numpy()], 0)
  assert (out["masked_lm_ids"] == expected_ids).all()
  np.testing.assert_array_equal(out["masked_lm_weights"][0], [1.0] * 8 + [0.0] * 2)
  ids = out["input_word_ids"]
  np.testing.assert_array_equal(ids[:, [0, 9, 10, 11, 12, 13]], np.tile(
      words[[0, 9, 10, 11, 12, 13]], (num_draws, 1)))  # untouched outside the positions
  chosen, original = ids[:, 1:9], words[1:9]
  masked = np.mean(chosen == IDS.mask_id)
  unchanged = np.mean(chosen == original)
  replaced = 1.0 - masked - unchanged
  # 6,400 draws: 5 standard deviations are about 0.025 (0.8) and 0.019 (0.1).
  assert masked == pytest.approx(0.8, abs=0.025)
  assert unchanged == pytest.approx(0.1, abs=0.02)
  assert replaced == pytest.approx(0.1, abs=0.02)
  assert ((chosen >= 0) & (chosen < IDS.vocab_size)).all()
  assert len(np.unique(chosen[(chosen != IDS.mask_id) & (chosen != original)])) > 100
