r"""Which attributes a captioner names: per kind, the share of each demo image's ground-truth words
(kaleido.demo.caption_grounding) that its caption contains, and how many captions are distinct.

  python tools/caption_attributes.py --catalog=workdir/demo/catalog/development.h5 \
      --captions=runs/cap_dev/a.captions.jsonl --captions=runs/cap_dev/b.captions.jsonl

The captions files are evaluate.py's <name>.captions.jsonl of the same demo split.
"""

from __future__ import annotations

import os

from absl import app
from absl import flags

from kaleido import errors
from kaleido.demo import caption_grounding
from kaleido.demo import groundtruth
from kaleido.evaluation import captioning
from kaleido.utils import cli

_CATALOG = flags.DEFINE_string("catalog", None, "The demo catalog split (<split>.h5) the captions "
                               "describe; its .groundtruth.json sidecar is read.")
_CAPTIONS = flags.DEFINE_multi_string("captions", [],
                                       "A captions file of evaluate.py (repeatable).")


def table(catalog: str, caption_files: list[str]) -> list[dict]:
  """One row per captions file: its name, distinct captions, and word recall per kind."""
  try:
    truths = groundtruth.load(catalog)
  except (FileNotFoundError, ValueError) as error:
    raise errors.KaleidoError(str(error)) from error
  stem = os.path.splitext(os.path.basename(catalog))[0]
  by_id = caption_grounding.truths_by_id(truths, stem)
  rows = []
  for path in caption_files:
    predictions, _ = captioning.read_predictions(path)
    rows.append({"captions": path, "images": len(predictions),
                 "distinct": caption_grounding.distinct_captions(predictions),
                 **caption_grounding.word_recall(predictions, by_id)})
  return rows


@cli.user_errors_as_messages
def main(argv):
  del argv
  if not _CAPTIONS.value:
    raise errors.KaleidoError("Pass at least one --captions=FILE (evaluate.py's "
                              "<name>.captions.jsonl).")
  rows = table(_CATALOG.value, _CAPTIONS.value)
  kinds = sorted({key for row in rows for key in row} - {"captions", "images", "distinct"})
  print("\t".join(["captions", "images", "distinct", *kinds]))
  for row in rows:
    print("\t".join([row["captions"], str(row["images"]), str(row["distinct"]),
                     *(f"{100 * row[kind]:.1f}" if kind in row else "-" for kind in kinds)]))


if __name__ == "__main__":
  flags.mark_flag_as_required("catalog")
  app.run(main)
