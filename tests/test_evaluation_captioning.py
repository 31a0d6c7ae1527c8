"""Caption JSON-lines files: read back what was written; malformed lines named by number."""

import pytest

from kaleido import errors
from kaleido.evaluation import captioning


def test_written_captions_read_back(tmp_path):
  path = str(tmp_path / "captions.jsonl")
  predictions = {"7": "red appliqué dress", "b": ""}
  references = {"7": ["Red dress with appliqué."], "b": ["Black boots.", "Boots"]}
  captioning.write_predictions(path, predictions, references)
  assert captioning.read_predictions(path) == (predictions, references)


@pytest.mark.parametrize("line, problem", [
    ('{"id": 2, "caption": "x" "references": ["y"]}', "is not valid JSON (Expecting ','"),
    ('{"id": 2, "caption": "unterminated', "is not valid JSON (Invalid control character at; "
     "column 35)"),  # not "at at column"
    ('["x", "y"]', "is not a JSON object"),
    ('{"id": 2, "caption": "x"}', "lacks references"),
    ('{"id": true, "caption": "x", "references": ["y"]}', "has an id that is not"),
    ('{"id": 2, "caption": 3, "references": ["y"]}', "has a caption that is not a string"),
    ('{"id": 2, "caption": "x", "references": []}', "has references that are not a non-empty"),
    ('{"id": 2, "caption": "x", "references": "y"}', "has references that are not a non-empty"),
])
def test_malformed_lines_are_named(tmp_path, line, problem):
  path = tmp_path / "captions.jsonl"
  path.write_text('{"id": 1, "caption": "x", "references": ["y"]}\n\n' + line + "\n")
  with pytest.raises(errors.KaleidoError) as error:
    captioning.read_predictions(str(path))
  assert str(error.value).startswith(f"Line 3 of {str(path)!r} {problem}")


def test_repeated_ids_and_empty_files(tmp_path):
  path = tmp_path / "captions.jsonl"
  path.write_text('{"id": 1, "caption": "x", "references": ["y"]}\n'
                  '{"id": "1", "caption": "z", "references": ["y"]}\n')
  with pytest.raises(errors.KaleidoError, match="Line 2 of .* repeats id '1' of line 1"):
    captioning.read_predictions(str(path))
  path.write_text("\n")
  with pytest.raises(errors.KaleidoError, match="has no lines to score"):
    captioning.read_predictions(str(path))
  path.write_bytes(b'{"id": 1, "caption": "caf\xe9", "references": ["y"]}\n')
  with pytest.raises(errors.KaleidoError, match="Line 1 of .* is not UTF-8 text"):
    captioning.read_predictions(str(path))


def test_empty_captions_are_counted_in_the_notes():
  from kaleido.metrics import captioning as caption_metrics  # pylint: disable=g-import-not-at-top
  metrics = caption_metrics.caption_metrics({"a": "red dress", "b": " ", "c": ""},
                                            {k: ["red dress"] for k in "abc"}, use_java=False)
  assert metrics["num_empty_captions"] == 2
  assert any(note.startswith("2 of the 3 captions are empty (e.g. id 'b')")
             for note in metrics["notes"])


def test_a_checkpoint_path_that_does_not_exist_is_named(tmp_path):
  from kaleido import config as config_lib  # pylint: disable=g-import-not-at-top
  absent = str(tmp_path / "runs" / "nothing_here")
  with pytest.raises(config_lib.ConfigError, match=f"^'{absent}' does not exist"):
    config_lib.load(absent)
