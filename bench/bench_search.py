r"""Quality and speed of two-stage retrieval over a whole gallery (a benchmark, not a test).

  python bench/bench_search.py --checkpoint=runs/demo_retrieval_itc \
      --eval_data=workdir/demo/prepared/validation --reranks=0,20,50,100,-1

Full-gallery ITR and TIR (every query product against one image or text of every product, as
evaluate.py --protocol=full) for each --reranks value (0: the ITC first stage alone; N: the best
N re-ranked by the ITM cross-encoder; -1: the cross-encoder over the whole gallery) and each
--fusion_weights value (the re-ranking score: margin + weight x ITC cosine), with queries/s. Then the per-item costs behind a projection to --catalog_sizes items per query: the
first stage as an exact float32 product of a query with N random 256-d unit vectors (measured at
each size), the cross-encoder's pairs/s and the query's own embedding pass on this checkpoint.
"""

import time

from absl import app
from absl import flags

_CHECKPOINT = flags.DEFINE_string("checkpoint", "runs/demo_retrieval_itc", "A train.py model_dir "
                                  "with the ITC head.")
_EVAL_DATA = flags.DEFINE_string("eval_data", "workdir/demo/prepared/validation",
                                 "A prepared folder.")
_RERANKS = flags.DEFINE_list("reranks", ["0", "20", "50", "100", "-1"], "Re-rank depths.")
_FUSION_WEIGHTS = flags.DEFINE_list("fusion_weights", ["0"], "Re-ranking scores to measure: ITM "
                                    "margin + weight x ITC cosine (evaluate.py --fusion_weight).")
_CATALOG_SIZES = flags.DEFINE_list("catalog_sizes", ["100000", "1000000"],
                                   "Catalog sizes of the first-stage measurement.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Pairs per model call.")


def _first_stage_seconds(size: int, dim: int = 256) -> float:
  """Seconds of one query's exact first stage over `size` unit vectors (searcher's blocks)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from kaleido.search import searcher  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  items = rng.standard_normal((size, dim), dtype=np.float32)
  items /= np.linalg.norm(items, axis=1, keepdims=True)
  query = items[0]
  blocks = lambda: np.concatenate([items[s:s + searcher.BLOCK] @ query
                                   for s in range(0, size, searcher.BLOCK)])
  blocks()
  start = time.perf_counter()
  for _ in range(5):
    scores = blocks()
    np.argpartition(-scores, 100)[:100]
  return (time.perf_counter() - start) / 5


def _itc_training_cost() -> str:
  """Forward GFLOP per example of a paper-size retrieval model without and with the ITC head
  (the patch embedder left out: frozen, it runs once either way)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from kaleido import config as config_lib  # pylint: disable=g-import-not-at-top
  from kaleido.model import kaleido_bert  # pylint: disable=g-import-not-at-top
  from kaleido.model import flop_count  # pylint: disable=g-import-not-at-top
  from kaleido.patches import kaleido_grid  # pylint: disable=g-import-not-at-top
  model_config = config_lib.KaleidoBertConfig(max_seq_length=64)  # the defaults: paper size
  size = model_config.patch_size
  inputs = {"input_word_ids": tf.ones([2, 64], tf.int32), "input_mask": tf.ones([2, 64], tf.int32),
            "patches": tf.constant(np.zeros((2, kaleido_grid.NUM_PATCHES, size, size, 3)),
                                   tf.uint8),
            "patch_boxes": tf.zeros([2, kaleido_grid.NUM_PATCHES, 5])}
  costs = []
  for weight in (0.0, 1.0):
    task = config_lib.TaskConfig(name="retrieval",
                                 finetune=config_lib.FinetuneConfig(itc_weight=weight))
    _, rest = flop_count.forward_flops(kaleido_bert.build_finetune_model(task, model_config),
                                         inputs)
    costs.append(rest / 2 / 1e9)
  return (f"paper size, forward GFLOP per training example beyond the patch embedder: "
          f"{costs[0]:.1f} without ITC, {costs[1]:.1f} with (+{costs[1] / costs[0] - 1:.0%}; "
          "x3 for forward + backward)")


def main(argv):
  del argv
  print(_itc_training_cost(), flush=True)
  import numpy as np  # pylint: disable=g-import-not-at-top
  from kaleido.evaluation import model as evaluation_model  # pylint: disable=g-import-not-at-top
  from kaleido.evaluation import retrieval  # pylint: disable=g-import-not-at-top
  model = evaluation_model.load(_CHECKPOINT.value, _EVAL_DATA.value, _BATCH_SIZE.value)
  start = time.perf_counter()
  model.patch_features(np.arange(model.num_examples))
  model.contrastive_embeddings()
  print(f"{model.num_examples} images embedded (patch features and ITC, once) in "
        f"{time.perf_counter() - start:.1f} s")
  print("| rerank | fusion weight | ITR R@1 / R@5 / R@10 | TIR R@1 / R@5 / R@10 | queries/s |")
  print("|---|---|---|---|---|")
  settings = [(int(rerank), float(weight)) for rerank in _RERANKS.value
              for weight in _FUSION_WEIGHTS.value if int(rerank) or not float(weight)]
  for rerank, weight in settings:
    row, seconds, queries = [], 0.0, 0
    for direction in ("itr", "tir"):
      start = time.perf_counter()
      result = retrieval.evaluate_retrieval(model.retrieval_scorer(direction, rerank, weight),
                                            model.product_ids, model.subcategory_ids, direction,
                                            protocol="full", num_queries=1000, num_draws=1)
      seconds += time.perf_counter() - start
      queries += result["num_queries"]
      row.append(" / ".join(f"{result[f'R@{k}']:.2f}" for k in (1, 5, 10)))
    name = {0: "0 (ITC alone)", -1: "-1 (cross-encoder, whole gallery)"}.get(rerank, rerank)
    print(f"| {name} | {weight:g} | {row[0]} | {row[1]} | {queries / seconds:.1f} |",
          flush=True)
  rows = np.arange(min(512, model.num_examples))
  start = time.perf_counter()
  model.matched_margin(rows, rows[::-1].copy())
  pair_seconds = (time.perf_counter() - start) / len(rows)
  print(f"cross-encoder: {1 / pair_seconds:.1f} pairs/s with cached patch features")
  for size in (int(value) for value in _CATALOG_SIZES.value):
    first = _first_stage_seconds(size)
    print(f"{size:,} items: first stage {first * 1e3:.1f} ms per query (exact, float32, top 100 "
          f"by argpartition); + rerank 50: {first + 50 * pair_seconds:.2f} s, rerank 100: "
          f"{first + 100 * pair_seconds:.2f} s; cross-encoder over all: "
          f"{size * pair_seconds / 3600:.1f} h")


if __name__ == "__main__":
  app.run(main)
