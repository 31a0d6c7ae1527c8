r"""Speed of the retrieval cross-encoder in evaluate.py (a benchmark, not a test).

  python bench/bench_eval.py --checkpoint=runs/demo_retrieval --eval_data=workdir/demo/prepared/validation
  python bench/bench_eval.py --sizes=demo,paper --precisions=none,mixed_bfloat16 --checkpoint=

With --checkpoint: images/s of the image side (the patch embedder on the 55 patches), pairs/s of
the encoder and ITM head with the image side cached (what evaluate.py does: every image is
embedded once and reused for its 101 candidates), and the pairs/s it would get by embedding the
image again for every pair; with --precisions, each compute policy in turn (rankings compared
with the first one's). With --sizes: the same two rates of a retrieval model of that size with
random weights (demo: small patch CNN, H=128, L=3; paper: ResNet-50, H=768, L=12, 64 tokens), and
the time they project for the paper's protocol (1,000 queries x 101 candidates x 5 draws x 2
directions, every Fashion-Gen validation image embedded once).
"""

import time

from absl import app
from absl import flags

_CHECKPOINT = flags.DEFINE_string("checkpoint", "runs/demo_retrieval", "A train.py model_dir.")
_EVAL_DATA = flags.DEFINE_string("eval_data", "workdir/demo/prepared/validation",
                                 "A prepared folder.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Pairs per model call.")
_NUM_PAIRS = flags.DEFINE_integer("num_pairs", 2048, "Pairs to score.")
_PRECISIONS = flags.DEFINE_list("precisions", ["none"], "Compute policies: none (float32) "
                                "and/or mixed_bfloat16.")
_SIZES = flags.DEFINE_list("sizes", [], "demo and/or paper: random-weight models of that size.")

# The paper's retrieval protocol (fashion-gen-and-protocols.md) and Fashion-Gen's validation set.
PROTOCOL_PAIRS = 1000 * 101 * 5 * 2
VALIDATION_IMAGES = 32528
SIZES = {"demo": dict(hidden_size=128, num_layers=3, num_heads=4, intermediate_size=512,
                      patch_cnn="small", vocab_size=4000),
         "paper": dict(hidden_size=768, num_layers=12, num_heads=12, intermediate_size=3072,
                       patch_cnn="resnet50", vocab_size=30522)}


def _rate(function, count: int) -> float:
  """Items per second of `function()` (which handles `count` items), after one warm-up call."""
  function()
  start = time.perf_counter()
  function()
  return count / (time.perf_counter() - start)


def _random_size(size: str, precision: str) -> tuple[float, float, float, float]:
  """(images/s, pairs/s, FLOPs per image, FLOPs per pair) of a random-weight retrieval model of
  `size` under `precision`."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tf_keras  # pylint: disable=g-import-not-at-top
  from kaleido import config as config_lib  # pylint: disable=g-import-not-at-top
  from kaleido.model import heads as heads_lib  # pylint: disable=g-import-not-at-top
  from kaleido.model import kaleido_bert  # pylint: disable=g-import-not-at-top
  from kaleido.patches import kaleido_grid  # pylint: disable=g-import-not-at-top
  from kaleido.utils import flops  # pylint: disable=g-import-not-at-top
  tf_keras.mixed_precision.set_global_policy("float32" if precision == "none" else precision)
  model_config = config_lib.KaleidoBertConfig(**SIZES[size], max_seq_length=64)
  matcher = kaleido_bert.build_finetune_model(config_lib.TaskConfig(name="retrieval"),
                                              model_config)
  backbone, batch = matcher.backbone, _BATCH_SIZE.value
  rng = np.random.default_rng(0)
  side = model_config.patch_size
  patches = tf.constant(rng.integers(0, 255, (4, kaleido_grid.NUM_PATCHES, side, side, 3)),
                        tf.uint8)
  embed = tf.function(lambda p: backbone.patch_embedder(p, training=False))
  inputs = {"input_word_ids": tf.constant(rng.integers(5, 1000, (batch, 64)), tf.int32),
            "input_mask": tf.ones([batch, 64], tf.int32),
            "patch_boxes": tf.constant(rng.uniform(size=(batch, kaleido_grid.NUM_PATCHES, 5)),
                                       tf.float32),
            "patch_features": tf.constant(rng.normal(size=(
                batch, kaleido_grid.NUM_PATCHES, model_config.feature_size)), tf.float32)}
  score = tf.function(lambda x: heads_lib.itm_margin(
      matcher.itm(backbone(x, training=False)["pooled_output"])))
  image_rate = _rate(lambda: embed(patches).numpy(), len(patches))
  pair_rate = _rate(lambda: score(inputs).numpy(), batch)
  image_flops = flops.function_flops(embed, patches) / len(patches)
  pair_flops = flops.function_flops(score, inputs) / batch
  tf_keras.mixed_precision.set_global_policy("float32")
  return image_rate, pair_rate, image_flops, pair_flops


def _projection(image_rate: float, pair_rate: float, image_flops: float,
                pair_flops: float) -> str:
  hours = (VALIDATION_IMAGES / image_rate + PROTOCOL_PAIRS / pair_rate) / 3600
  total = VALIDATION_IMAGES * image_flops + PROTOCOL_PAIRS * pair_flops
  return (f"{image_flops / 1e9:.2f} GFLOP per image, {pair_flops / 1e9:.2f} per pair; paper "
          f"protocol ({PROTOCOL_PAIRS:,} pairs, {VALIDATION_IMAGES:,} images embedded once): "
          f"{total / 1e15:.2f} PFLOP, {hours:.1f} h on this machine")


def _checkpoint(precision: str):
  """Rates of --checkpoint on --eval_data under `precision`; returns its margins of 2,048 pairs
  for the ranking comparison."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from kaleido.evaluation import model as evaluation_model  # pylint: disable=g-import-not-at-top

  model = evaluation_model.load(_CHECKPOINT.value, _EVAL_DATA.value, _BATCH_SIZE.value,
                                mixed_precision=precision)
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
  margins = model.matched_margin(texts, pairs)
  pair_rate = _NUM_PAIRS.value / (time.perf_counter() - start)
  uncached = 1.0 / (1.0 / pair_rate + 1.0 / image_rate)
  print(f"{precision}: image side (patch embedder, 55 patches): {image_rate:.1f} images/s")
  print(f"  cross-encoder + ITM head, image side cached: {pair_rate:.1f} pairs/s")
  print(f"  same without the cache (embedding every pair's image): {uncached:.1f} pairs/s")
  print(f"  sample-100 cost per query and direction: {101 / pair_rate:.2f} s "
        f"({model.run.model.patch_cnn} patch CNN, H={model.run.model.hidden_size}, "
        f"L={model.run.model.num_layers})")
  return margins


def main(argv):
  del argv
  import numpy as np  # pylint: disable=g-import-not-at-top
  if _CHECKPOINT.value:
    first = None
    for precision in _PRECISIONS.value:
      margins = _checkpoint(precision)
      if first is None:
        first = margins
        continue
      # Rankings: each block of 101 pairs as a sample-100 query's candidates.
      blocks = len(margins) // 101
      first_blocks = first[:blocks * 101].reshape(blocks, 101)
      these = margins[:blocks * 101].reshape(blocks, 101)
      same_top = np.mean(np.argmax(first_blocks, 1) == np.argmax(these, 1))
      agree = np.mean([np.sign(a[:, None] - a[None]) == np.sign(b[:, None] - b[None])
                       for a, b in zip(first_blocks, these)])
      print(f"  against {_PRECISIONS.value[0]}: max margin difference "
            f"{np.abs(first - margins).max():.4f}; of {blocks} blocks of 101 pairs, "
            f"{same_top:.0%} with the same top pair; {agree:.2%} of candidate pairs in the same "
            "order")
  for size in _SIZES.value:
    for precision in _PRECISIONS.value:
      image_rate, pair_rate, image_flops, pair_flops = _random_size(size, precision)
      print(f"{size} size, {precision}: {image_rate:.1f} images/s, {pair_rate:.1f} pairs/s; "
            f"{_projection(image_rate, pair_rate, image_flops, pair_flops)}")


if __name__ == "__main__":
  app.run(main)
