"""A self-contained HTML page of search results (thumbnails inlined), to judge them at a glance."""

from __future__ import annotations

import base64
import dataclasses
import html
from typing import Sequence

from kaleido.search import searcher as searcher_lib
from kaleido.utils import files

_STYLE = """
body { font-family: sans-serif; margin: 1.5em; }
h2 { margin-top: 1.8em; }
.hits { display: flex; flex-wrap: wrap; gap: 12px; }
.hit { width: 180px; border: 1px solid #ccc; padding: 6px; font-size: 12px; }
.hit img, .query img { max-width: 160px; max-height: 160px; display: block; margin: auto; }
.score { color: #555; }
"""


@dataclasses.dataclass(frozen=True)
class QueryResults:
  """One query (its text, or an image's file name and crop) and its hits."""
  query: str
  hits: Sequence[searcher_lib.Hit]
  query_image: bytes = b""  # JPEG of the query image's crop, for image queries


def _image(jpeg: bytes, alt: str) -> str:
  data = base64.b64encode(jpeg).decode("ascii")
  return f'<img src="data:image/jpeg;base64,{data}" alt="{html.escape(alt)}">'


def _hit(hit: searcher_lib.Hit, thumbnail: bytes, show_text: bool) -> str:
  margin = "" if hit.itm_margin is None else f" · ITM {hit.itm_margin:+.2f}"
  text = f"<div>{html.escape(hit.text)}</div>" if show_text else ""
  return (f'<div class="hit"><b>#{hit.rank}</b> {html.escape(hit.product_id)}'
          f"{_image(thumbnail, hit.image_id)}{text}"
          f'<div class="score">ITC {hit.first_stage:.3f}{margin}</div></div>')


def results_page(results: Sequence[QueryResults], thumbnails: Sequence[bytes],
                 title: str) -> str:
  """The page: per query, its hits in rank order with thumbnail, product id, scores (and the
  product's text, for image queries)."""
  sections = []
  for result in results:
    image_query = bool(result.query_image)
    header = html.escape(result.query)
    if image_query:
      header = f'<div class="query">{_image(result.query_image, result.query)}{header}</div>'
    hits = "".join(_hit(hit, thumbnails[hit.row], image_query) for hit in result.hits)
    sections.append(f"<h2>{header}</h2><div class=\"hits\">{hits}</div>")
  return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}"
          f"</title><style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
          f"{''.join(sections)}</body></html>\n")


def write_results_page(path: str, results: Sequence[QueryResults], thumbnails: Sequence[bytes],
                       title: str) -> None:
  """Writes `results_page` to `path` atomically."""
  with files.atomic_path(path) as tmp_path:
    with open(tmp_path, "w", encoding="utf-8") as f:
      f.write(results_page(results, thumbnails, title))
