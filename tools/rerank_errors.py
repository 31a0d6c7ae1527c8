r"""Where the ITM margin re-ranks the ITC shortlist wrongly (issue #33): image queries, one per
product, against every product's text; per query the ITC top --depth re-ranked by the margin.

  python tools/rerank_errors.py --run runs/demo_retrieval --data workdir/demo/prepared/development

Prints how often each stage puts the true product first, how many of the margin's wrong picks
share the query's subcategory, and the texts of a few queries ITC gets right and the margin not.
"""

from __future__ import annotations

from absl import app
from absl import flags
import numpy as np

from kaleido.utils import cli

_RUN = flags.DEFINE_string("run", None, "A retrieval train.py --model_dir with an ITC head.")
_DATA = flags.DEFINE_string("data", None, "A prepared folder (e.g. the demo's development split).")
_DEPTH = flags.DEFINE_integer("depth", 20, "The ITC shortlist the margin re-ranks.")
_SHOW = flags.DEFINE_integer("show", 8, "Examples printed.")


@cli.user_errors_as_messages
def main(argv):
  del argv
  from kaleido.evaluation import model as model_lib  # pylint: disable=g-import-not-at-top
  model = model_lib.load(_RUN.value, _DATA.value)
  examples = model._examples  # pylint: disable=protected-access
  products = examples.product_ids
  rows = np.sort(np.unique(products, return_index=True)[1])  # each product's first image and text
  text, image = model.contrastive_embeddings()
  shortlists = rows[np.argsort(-(image[rows] @ text[rows].T), axis=1)[:, :_DEPTH.value]]
  outcomes = {"both right": 0, "ITC right, margin wrong": 0, "margin right, ITC wrong": 0,
              "both wrong": 0}
  wrong, same_subcategory, shown = 0, 0, []
  for query, shortlist in zip(rows, shortlists):
    margins = model.matched_margin(shortlist, np.full(len(shortlist), query))
    pick = shortlist[int(np.argmax(margins))]
    itc_right, margin_right = (products[candidate] == products[query]
                               for candidate in (shortlist[0], pick))
    outcomes[("both right" if margin_right else "ITC right, margin wrong") if itc_right else
             ("margin right, ITC wrong" if margin_right else "both wrong")] += 1
    if not margin_right:
      wrong += 1
      same_subcategory += int(examples.subcategory_ids[pick] == examples.subcategory_ids[query])
      if itc_right and len(shown) < _SHOW.value:
        shown.append((examples.texts[query], examples.texts[pick]))
  print(f"{len(rows)} image queries, ITC top {_DEPTH.value} re-ranked by the ITM margin: "
        + ", ".join(f"{name} {count}" for name, count in outcomes.items()))
  print(f"the margin's wrong picks in the query's subcategory: {same_subcategory} of {wrong}")
  for truth, pick in shown:
    print(f"  {truth!r}: the margin picks {pick!r}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["run", "data"])
  app.run(main)
