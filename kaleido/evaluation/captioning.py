"""Caption files: one JSON object per line, {"id", "caption", "references"}.

The same format is read by `evaluate.py --predictions` (captions from any captioner) and written
beside the metrics by a model evaluation, so a model's captions can be re-scored later.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping, Sequence

from kaleido import errors
from kaleido.utils import files
from kaleido.utils import text_validity

_FIELDS = ("id", "caption", "references")


def _line_error(path: str, number: int, problem: str) -> errors.KaleidoError:
  return errors.KaleidoError(f"Line {number} of {path!r} {problem}; each line must be a JSON "
                             'object {"id": ..., "caption": "...", "references": ["...", ...]}.')


def _parse_line(path: str, number: int, line: bytes) -> tuple[str, str, list[str]]:
  try:
    row: Any = json.loads(line.decode("utf-8"))
  except UnicodeDecodeError as error:
    raise _line_error(path, number, "is not UTF-8 text") from error
  except json.JSONDecodeError as error:
    raise _line_error(path, number, f"is not valid JSON ({error.msg}; column {error.colno})"
                      ) from error
  if not isinstance(row, dict):
    raise _line_error(path, number, "is not a JSON object")
  missing = [f for f in _FIELDS if f not in row]
  if missing:
    raise _line_error(path, number, f"lacks {', '.join(missing)}")
  key, caption, references = row["id"], row["caption"], row["references"]
  if isinstance(key, bool) or not isinstance(key, (str, int)) or key == "":
    raise _line_error(path, number, "has an id that is not a non-empty string or an integer")
  if not isinstance(caption, str):
    raise _line_error(path, number, "has a caption that is not a string")
  if (not isinstance(references, list) or not references or
      not all(isinstance(r, str) and not text_validity.is_empty(r) for r in references)):
    raise _line_error(path, number, "has references that are not a non-empty list of "
                      "non-empty strings")
  return str(key), caption, references


def read_predictions(path: str) -> tuple[dict[str, str], dict[str, list[str]]]:
  """({id: caption}, {id: [references]}) from a JSON-lines file; blank lines are skipped."""
  if not os.path.isfile(path):
    raise errors.KaleidoError(f"Predictions file {path!r} does not exist.")
  predictions: dict[str, str] = {}
  references: dict[str, list[str]] = {}
  first_line: dict[str, int] = {}
  with open(path, "rb") as f:
    for number, line in enumerate(f, start=1):
      if not line.strip():
        continue
      key, caption, refs = _parse_line(path, number, line)
      if key in first_line:
        raise errors.KaleidoError(f"Line {number} of {path!r} repeats id {key!r} of line "
                                  f"{first_line[key]}; give each image one line.")
      first_line[key] = number
      predictions[key], references[key] = caption, refs
  if not predictions:
    raise errors.KaleidoError(f"Predictions file {path!r} has no lines to score.")
  return predictions, references


def write_predictions(path: str, predictions: Mapping[str, str],
                      references: Mapping[str, Sequence[str]]) -> None:
  """Writes generated captions beside their references, one JSON line per id, atomically."""
  with files.atomic_path(path) as tmp_path:
    with open(tmp_path, "w", encoding="utf-8") as f:
      for key, caption in predictions.items():
        f.write(json.dumps({"id": key, "caption": caption, "references": list(references[key])},
                           ensure_ascii=False) + "\n")
