r"""Searches a catalog index in two stages: ITC over every item, the ITM cross-encoder re-ranks.

  python tools/search.py --index runs/index_demo --query "red striped cotton shirt" \
      --top_k 10 --rerank 100 --html results.html
  python tools/search.py --index runs/index_demo --image shirt.jpg    # image -> texts

Prints one JSON line per hit (query, rank, product_id, image_id, text, first_stage: the ITC
cosine, itm_margin: the cross-encoder's log-odds when re-ranked, row: the index row) to stdout or
--output; --html writes a page with the query, the hits' thumbnails, ids and scores.
"""

import json
import os
import sys

from absl import flags
from absl import logging

from kaleido.evaluation import two_stage
from kaleido.search import defaults
from kaleido.utils import cli

_INDEX = flags.DEFINE_string("index", None, "An index folder of tools/build_index.py.")
_QUERY = flags.DEFINE_multi_string("query", [], "A text query (repeatable): finds images.")
_IMAGE = flags.DEFINE_multi_string("image", [], "An image file query (repeatable): finds the "
                                   "catalog's texts, one per product.")
_TOP_K = flags.DEFINE_integer("top_k", defaults.TOP_K, "Hits per query.")
_RERANK = flags.DEFINE_integer(
    "rerank", two_stage.DEFAULT_RERANK, "First-stage hits re-ranked by the cross-encoder (0: "
    "the first stage alone; -1: the cross-encoder over every item, slow beyond a few thousand; "
    "the default measured best, issue #33).")
_FUSION_WEIGHT = flags.DEFINE_float(
    "fusion_weight", two_stage.DEFAULT_FUSION_WEIGHT, "The re-ranked hits are ordered by ITM "
    "margin + this x first-stage cosine (0: the cross-encoder's margin alone).", lower_bound=0.0)
_CHECKPOINT = flags.DEFINE_string("checkpoint", "", "The run to search with (default: the one "
                                  "the index was built with; another is refused).")
_OUTPUT = flags.DEFINE_string("output", "", "JSON-lines file of the hits (default: stdout).")
_HTML = flags.DEFINE_string("html", "", "Also write the hits as an HTML page here.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", defaults.BATCH_SIZE,
                                   "Pairs per cross-encoder call.")


def _check_flags() -> None:
  from kaleido import errors  # pylint: disable=g-import-not-at-top
  if not _QUERY.value and not _IMAGE.value:
    raise errors.KaleidoError("Give at least one --query TEXT or --image FILE.")
  if _TOP_K.value < 1 or _RERANK.value < -1:
    raise errors.KaleidoError(f"--top_k={_TOP_K.value} must be >= 1 and --rerank="
                              f"{_RERANK.value} >= -1.")


@cli.user_errors_as_messages
def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  _check_flags()
  from kaleido.search import page  # pylint: disable=g-import-not-at-top
  from kaleido.search import searcher as searcher_lib  # pylint: disable=g-import-not-at-top
  searcher = searcher_lib.Searcher(_INDEX.value, _CHECKPOINT.value, _BATCH_SIZE.value)
  results = [page.QueryResults(text, searcher.search_text(text, _TOP_K.value, _RERANK.value,
                                                         _FUSION_WEIGHT.value))
             for text in _QUERY.value]
  for path in _IMAGE.value:
    query = searcher.image_query(searcher_lib.read_query_image(path))
    results.append(page.QueryResults(os.path.basename(path),
                                     searcher.search_image(query, _TOP_K.value, _RERANK.value,
                                                           _FUSION_WEIGHT.value),
                                     query.thumbnail))
  lines = [json.dumps({"query": result.query, **hit.as_json()}) for result in results
           for hit in result.hits]
  if _OUTPUT.value:
    from kaleido.utils import files  # pylint: disable=g-import-not-at-top
    with files.atomic_path(_OUTPUT.value) as tmp_path:
      with open(tmp_path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
  else:
    print("\n".join(lines))
  if _HTML.value:
    page.write_results_page(_HTML.value, results, searcher.index.thumbnails,
                            f"Search of {_INDEX.value}")
    print(f"Wrote {_HTML.value}.", file=sys.stderr)


def run() -> None:
  """The `kaleido-search` command."""
  flags.mark_flags_as_required(["index"])
  cli.run(main)


if __name__ == "__main__":
  run()
