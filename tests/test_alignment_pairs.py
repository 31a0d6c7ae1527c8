"""From attention maps to alignment pairs: geometry on hand-made maps, the co-occurrence rule,
the quality criteria and the pictures."""

import os

import numpy as np
import pytest

from kaleido.alignment import config as align_config
from kaleido.alignment import decoding
from kaleido.alignment import generator
from kaleido.alignment import pairs
from kaleido.alignment import pictures
from kaleido.alignment import quality
from kaleido.alignment import words
from kaleido.patches import pictures as patch_pictures

CONFIG = align_config.AlignConfig()
TEXT = ["[CLS]", "red", "app", "##li", "##qué", "pocket", "at", "the", "front", ".", "red",
        "collar", "[SEP]"]


def _one_cell(grid: int, row: int, col: int) -> np.ndarray:
  attention = np.zeros((grid, grid))
  attention[row, col] = 1.0
  return attention


def _pairs_of(attention: np.ndarray, config=CONFIG) -> list[int]:
  raster = pairs.attention_raster(attention, config.raster_size)
  region = pairs.attention_region(raster, config.mass_fraction)
  return sorted(p for p, _ in pairs.choose_patches(raster, region, config))


@pytest.mark.parametrize("grid,expected", [
    (3, ([5, 14, 30], [13, 29, 54], [7, 17, 34])),  # a third of the crop: L3, L4 and L5
    (5, ([14, 30], [29, 54], [17, 34])),  # one L5 patch: too small for the L3 one
    (8, ([], [], [])),  # an 8th: smaller than a third of an L5 patch, nothing
])
def test_all_mass_in_one_corner_cell_gives_that_corners_patches(grid, expected):
  corners = ((0, 0), (grid - 1, grid - 1), (0, grid - 1))  # top left, bottom right, top right
  assert tuple(_pairs_of(_one_cell(grid, *corner)) for corner in corners) == expected


def test_patch_scores_are_dice_overlaps():
  region = np.zeros((60, 60), bool)
  region[:12, :12] = True  # exactly L5 patch 30 (144 cells), inside L4 14 (225), L3 5 (400)
  scores = pairs.patch_scores(region)
  np.testing.assert_allclose(scores[[30, 14, 5, 31]], [1.0, 288 / 369, 288 / 544, 0.0])
  assert (scores[:5] == 0).all()  # L1 and L2 are never aligned
  region[:12, :24] = True  # 12 x 24 cells: L5 patches 30 and 31
  scores = pairs.patch_scores(region)
  # L4 patches are 15 x 15 (they share 12 x 15 and 12 x 9 cells), L3 patch 5 shares 12 x 20.
  np.testing.assert_allclose(scores[[30, 31, 32, 14, 15, 5]],
                             [288 / 432, 288 / 432, 0.0, 360 / 513, 216 / 513, 480 / 688])


def test_region_holds_the_requested_mass_and_diffuse_maps_give_nothing():
  uniform = np.full((6, 6), 1.0 / 36)
  raster = pairs.attention_raster(uniform, 60)
  np.testing.assert_allclose(raster.sum(), 1.0)
  assert pairs.attention_region(raster, 0.5).mean() == pytest.approx(0.5, abs=0.01)
  assert _pairs_of(uniform) == []  # half the crop is no localisation
  quarter = np.zeros((6, 6))
  quarter[:3, :3] = 1.0 / 9  # the top-left quarter: its densest half is an eighth of the crop
  assert _pairs_of(quarter) == [5, 14]  # L3 and L4 patches of that corner; L5 ones are small
  assert _pairs_of(quarter, align_config.AlignConfig(max_region_area=0.1)) == []


def test_per_level_choice_prefers_the_patch_with_most_attention():
  attention = np.zeros((5, 5))  # 5 x 5 cells: each is exactly one L5 patch
  attention[3, 1], attention[3, 2] = 0.45, 0.55  # both in the region, more mass right
  one = align_config.AlignConfig(mass_fraction=0.8, max_patches_per_level=1)
  assert _pairs_of(attention, one) == [23, 47]  # L4 row 2 col 1; L5 row 3 col 2
  three = align_config.AlignConfig(mass_fraction=0.8, max_patches_per_level=3)
  assert _pairs_of(attention, three) == [23, 46, 47]


def test_words_merge_pieces_lowercase_and_strip_accents():
  grouped = words.group_words(TEXT)
  assert grouped[1] == words.Word("applique", (2, 3, 4))
  assert words.normalise("Appliqué CRÊPE") == "applique crepe"
  assert [w.text for w in grouped] == ["red", "applique", "pocket", "at", "the", "front", ".",
                                       "red", "collar"]
  # A "##" piece right after a special token starts a word of its own.
  assert words.group_words(["[CLS]", "##s", "x"]) == [words.Word("s", (1,)), words.Word("x", (2,))]
  content = words.content_positions(TEXT)
  assert content == {"red": [1, 10], "applique": [2, 3, 4], "pocket": [5], "front": [8],
                     "collar": [11]}  # no stop words ("at", "the"), no punctuation


def test_co_occurring_words_only_with_all_pieces_and_occurrences():
  caption = ["app", "##li", "##que", "in", "the", "red", "blue", "."]
  attention = np.zeros((len(caption), 3, 3))
  attention[:, 0, 0] = 1.0  # every token looks at the top-left third
  attention[2] = 0.0
  attention[2, 2, 2] = 1.0  # ... but the last piece of "applique" looks bottom right
  alignment = pairs.align_caption(TEXT, caption, attention, CONFIG)
  assert [w.word for w in alignment.words] == ["applique", "red"]  # "blue" is not in the text
  red, applique = alignment.words[1], alignment.words[0]
  assert sorted(red.patches) == [5, 14, 30] and red.text_positions == (1, 10)
  np.testing.assert_allclose(applique.attention.sum(), 1.0)  # mean map of its three pieces
  assert applique.attention[0, 0] == pytest.approx(2 / 3)
  assert applique.text_positions == (2, 3, 4) and applique.patches
  written = {}
  for token, patch, score in zip(alignment.align_token.tolist(),
                                 alignment.align_patch.tolist(), alignment.align_score.tolist()):
    written.setdefault(token, set()).add(patch)
    assert score >= CONFIG.min_score
  # Every occurrence of "red" and every piece of "applique" gets its word's patches.
  assert written == {1: {5, 14, 30}, 10: {5, 14, 30}, 2: set(applique.patches),
                     3: set(applique.patches), 4: set(applique.patches)}
  assert alignment.align_token.dtype == np.int64 and alignment.align_score.dtype == np.float32


def test_no_co_occurring_word_gives_no_pairs():
  caption = ["blue", "in", "."]
  alignment = pairs.align_caption(TEXT, caption, np.full((3, 6, 6), 1 / 36), CONFIG)
  assert alignment.num_pairs == 0 and alignment.words == []


def test_quality_criteria_and_random_baseline():
  crop_box = (0.25, 0.0, 0.75, 1.0)  # a tall crop in the middle of the image
  boxes = quality.patch_boxes(crop_box)
  np.testing.assert_allclose(boxes[30], [0.25, 0.0, 0.35, 0.2])
  logo = (0.26, 0.01, 0.30, 0.05)  # a small detail inside L5 patch 30
  assert quality.matches(boxes, logo, "overlap")[[5, 14, 30, 31]].tolist() == [
      True, True, True, False]
  assert not quality.matches(boxes, logo, "centre")[30]  # the patch centre is outside it
  evaluator = quality.Evaluator({"logo": "detail", "red": "colour"}, draws=50, seed=0)
  truth = {"logo": [("detail", logo)], "red": [("colour", (0.25, 0.0, 0.75, 1.0))]}
  tokens = ["[CLS]", "red", "logo", "cotton", "[SEP]"]
  evaluator.add(truth, tokens, crop_box, [2, 2, 1, 3], [30, 54, 40, 40])
  tally = evaluator.tally
  assert tally.links["detail"] == 2 and tally.precision("detail") == 0.5
  assert tally.precision("colour") == 1.0 and tally.recall("detail") == 1.0
  assert tally.unjudged_links == 1  # "cotton" has no ground truth anywhere
  assert tally.precision("detail", random=True) == pytest.approx(3 / 50, abs=0.03)
  assert tally.best_precision("detail") == 1.0  # L5 patch 30 holds the logo: 54 could be right


def test_quality_ceiling_counts_levels_without_a_matching_patch():
  crop_box = (0.25, 0.0, 0.75, 1.0)
  corner = (0.33, 0.18, 0.37, 0.22)  # on the corner of L5 patches 30, 31, 35 and 36
  boxes = quality.patch_boxes(crop_box)
  assert not quality.matches(boxes, corner, "overlap")[quality.PATCH_LEVELS == 5].any()
  assert quality.matches(boxes, corner, "overlap")[14]  # the first L4 patch holds all of it
  evaluator = quality.Evaluator({"logo": "detail"}, draws=10, seed=0)
  evaluator.add({"logo": [("detail", corner)]}, ["[CLS]", "logo", "[SEP]"], crop_box, [1, 1],
                [30, 14])
  tally = evaluator.tally
  assert tally.precision("detail") == 0.5 and tally.best_precision("detail") == 0.5
  evaluator.add({}, ["[CLS]", "logo", "[SEP]"], crop_box, [1], [30])  # named, not in the image
  assert evaluator.tally.best_precision("detail") == pytest.approx(1 / 3)


def test_pictures_show_the_heat_map_and_the_chosen_patches(tmp_path):
  caption = ["red", "collar", "."]
  attention = np.zeros((3, 3, 3))
  attention[:, 0, 0] = 1.0
  alignment = pairs.align_caption(TEXT, caption, attention, CONFIG)
  result = generator.ExampleResult(
      caption=decoding.Caption(np.array([7, 8, 9]), attention, -1.0), caption_tokens=caption,
      text_tokens=TEXT, alignment=alignment)
  crop = np.full((64, 64, 3), 200, np.uint8)
  picture = pictures.alignment_picture([crop, crop], [result, result], size=90)
  # Two rows of: two caption lines, a label and the tiles (crop, "red", "collar"); 10 px gap.
  row_height = 3 * pictures.LABEL_HEIGHT + 90
  assert picture.shape == (2 * row_height + 10, 3 * 90 + 2 * 6, 3)
  tile = picture[3 * pictures.LABEL_HEIGHT:row_height, 96:186]
  assert (tile == pictures.LEVEL_COLOURS[5]).all(axis=-1).any()  # the L5 patch is outlined
  assert (tile == pictures.LEVEL_COLOURS[3]).all(axis=-1).any()
  path = str(tmp_path / "alignments.png")
  patch_pictures.write_png(path, picture)
  assert os.path.getsize(path) > 0
