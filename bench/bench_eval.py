r"""Speed of the retrieval cross-encoder in evaluate.py (a benchmark, not a test).

  python bench/bench_eval.py --checkpoint=runs/demo_retrieval --eval_data=workdir/demo/prepared/validation

Prints images/s of the image side (the patch embedder on the 55 patches), pairs/s of the encoder
and ITM head with the image side cached (what evaluate.py does: every image is embedded once and
reused for its 101 candidates), and the pairs/s it would get by embedding the image again for every
pair.
"""

import time

from absl import app
from absl import flags

_CHECKPOINT = flags.DEFINE_string("checkpoint", "runs/demo_retrieval", "A train.py model_dir.")
_EVAL_DATA = flags.DEFINE_string("eval_data", "workdir/demo/prepared/validation",
                                 "A prepared folder.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Pairs per model call.")
_NUM_PAIRS = flags.DEFINE_integer("num_pairs", 2048, "Pairs to score.")


def main(argv):
  del argv
  import numpy as np  # pylint: disable=g-import-not-at-top
  from kaleido.evaluation import model as evaluation_model  # pylint: disable=g-import-not-at-top

  model = evaluation_model.load(_CHECKPOINT.value, _EVAL_DATA.value, _BATCH_SIZE.value)
  images = np.arange(model.num_examples)
  model.patch_features(images[:_BATCH_SIZE.value])  # trace and warm up
  start = time.perf_counter()
  model.patch_features(images[_BATCH_SIZE.value:])
  image_rate = (len(images) - _BATCH_SIZE.value) / (time.perf_counter() - start)
  rng = np.random.default_rng(0)
  texts = rng.integers(0, len(images), _NUM_PAIRS.value)
  pairs = rng.integers(0, len(images), _NUM_PAIRS.value)
  model.matched_margin(texts[:_BATCH_SIZE.value], pairs[:_BATCH_SIZE.value])  # warm up
  start = time.perf_counter()
  model.matched_margin(texts, pairs)
  pair_rate = _NUM_PAIRS.value / (time.perf_counter() - start)
  uncached = 1.0 / (1.0 / pair_rate + 1.0 / image_rate)
  print(f"image side (patch embedder, 55 patches): {image_rate:.1f} images/s")
  print(f"cross-encoder + ITM head, image side cached: {pair_rate:.1f} pairs/s")
  print(f"same without the cache (embedding every pair's image): {uncached:.1f} pairs/s")
  print(f"sample-100 cost per query and direction: {101 / pair_rate:.2f} s "
        f"({model.run.model.backbone} backbone, H={model.run.model.hidden_size}, "
        f"L={model.run.model.num_layers})")


if __name__ == "__main__":
  app.run(main)
