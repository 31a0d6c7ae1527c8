"""Word recall of captions against the demo catalog's ground truth, and its tool."""

import json

import numpy as np
import pytest

from kaleido import errors
from kaleido.demo import caption_grounding
from kaleido.demo import groundtruth
from tests import tool_modules


def _truth(row: int, words: list[tuple[str, str]]) -> groundtruth.ImageTruth:
  return groundtruth.ImageTruth(
      row=row, product_id=str(row), foreground_box=(0, 0, 2, 2),
      foreground_mask=np.ones((2, 2), bool),
      words=[groundtruth.WordBox(word, kind, (0, 0, 2, 2)) for word, kind in words])


TRUTHS = [_truth(0, [("navy", "colour"), ("t-shirt", "category"), ("short", "sleeve")]),
          _truth(1, [("pink", "colour"), ("white", "colour"), ("boots", "category")])]


def test_recall_counts_each_image_word_of_each_kind_once():
  by_id = caption_grounding.truths_by_id(TRUTHS, "development")
  predictions = {"development:0": "navy t - shirt . long sleeves , navy trim .",  # short: missed
                 "development:1": "Pink ankle boots."}                       # white: missed
  recall = caption_grounding.word_recall(predictions, by_id)
  assert recall == {"category": 1.0, "colour": pytest.approx(2 / 3), "sleeve": 0.0}
  assert caption_grounding.distinct_captions({**predictions, "development:2": "Pink ankle boots."}
                                             ) == 2


def test_a_caption_of_another_split_is_refused_in_one_sentence():
  by_id = caption_grounding.truths_by_id(TRUTHS, "development")
  with pytest.raises(errors.KaleidoError, match=r"'validation:0'.*pass the demo catalog"):
    caption_grounding.word_recall({"validation:0": "navy"}, by_id)


def test_tool_reads_the_sidecar_and_an_evaluate_captions_file(tmp_path):
  catalog = str(tmp_path / "development.h5")
  groundtruth.save(catalog, TRUTHS)
  captions = tmp_path / "caption.captions.jsonl"
  captions.write_text("".join(json.dumps({"id": f"development:{row}", "caption": caption,
                                          "references": ["x"]}) + "\n"
                              for row, caption in ((0, "short navy tee"), (1, "black boots"))))
  tool = tool_modules.load("caption_attributes")
  [row] = tool.table(catalog, [str(captions)])
  assert (row["images"], row["distinct"]) == (2, 2)
  assert (row["colour"], row["category"], row["sleeve"]) == (pytest.approx(1 / 3), 0.5, 1.0)
  with pytest.raises(errors.KaleidoError, match="No ground-truth sidecar"):
    tool.table(str(tmp_path / "validation.h5"), [str(captions)])
