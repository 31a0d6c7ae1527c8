r"""Autoregressive captioning with and without the key/value cache (a benchmark, not a test).

  python bench/bench_caption.py --sizes demo,paper          # random weights, full-length captions
  python bench/bench_caption.py --checkpoint runs/demo_caption --eval_data demo  # a real run

With --sizes: a captioner of that size with random weights decodes --num_images captions of the
full max_seq_length with the cache and the first --num_uncached of them without it (the [SEP]
logit is pushed down so every caption runs to the end, and both decoders do the same number of
steps); prints captions/s greedy each way (both traced at the timed shapes first), whether the
tokens agree, and the FLOPs of one caption each way (counted from the traced graphs).
With --checkpoint: the run's greedy and beam-3 captions of the evaluation split with and without
the cache, how many are token for token the same, and the time each took.
"""

from __future__ import annotations

import time

from absl import app
from absl import flags
import numpy as np

_SIZES = flags.DEFINE_list("sizes", [], "demo (H=128, L=3, A=4) and/or paper (H=768, L=12, "
                           "A=12, 64 tokens).")
_NUM_IMAGES = flags.DEFINE_integer("num_images", 32, "--sizes: captions decoded in one batch "
                                   "with the cache (as evaluate.py's --batch_size).")
_NUM_UNCACHED = flags.DEFINE_integer("num_uncached", 8, "--sizes: of those, how many are also "
                                     "decoded without the cache (its full encoder passes are "
                                     "compute-bound at any batch, so a few give its rate).")
_CHECKPOINT = flags.DEFINE_string("checkpoint", "", "A captioning train.py model_dir.")
_EVAL_DATA = flags.DEFINE_string("eval_data", "demo", "--checkpoint: a prepared folder or demo "
                                 "(its validation split).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Images decoded per call.")

SIZES = {"demo": dict(hidden_size=128, num_layers=3, num_heads=4, intermediate_size=512,
                      vocab_size=4000),
         "paper": dict(hidden_size=768, num_layers=12, num_heads=12, intermediate_size=3072,
                       vocab_size=30522)}
CLS, SEP, PAD = 2, 3, 0


def _random_captioner(size: str):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from kaleido import config as config_lib  # pylint: disable=g-import-not-at-top
  from kaleido.model import kaleido_bert  # pylint: disable=g-import-not-at-top
  model = config_lib.KaleidoBertConfig(**SIZES[size], max_seq_length=64, patch_cnn="small",
                                       patch_size=16)
  captioner = kaleido_bert.build_finetune_model(config_lib.TaskConfig(name="caption"), model)
  bias = next(v for v in captioner.masked_lm.weights if "output_bias" in v.name)
  bias.assign(-1e4 * tf.one_hot(SEP, model.vocab_size))
  return captioner, model


def _uncached_step(captioner, features, boxes):
  """evaluate.py's decoding step without the cache: the whole encoder for every new token."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from kaleido.evaluation import caption_decoding  # pylint: disable=g-import-not-at-top
  from kaleido.patches import kaleido_grid  # pylint: disable=g-import-not-at-top
  encode = tf.function(reduce_retracing=True)(
      lambda inputs: captioner.backbone(inputs, training=False))
  return caption_decoding.uncached_caption_step(encode, captioner.masked_lm, features.numpy(),
                                                boxes.numpy(), kaleido_grid.LEVELS)


def _speed(size: str) -> None:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from kaleido.model import beam_search  # pylint: disable=g-import-not-at-top
  from kaleido.model import caption_decoder  # pylint: disable=g-import-not-at-top
  from kaleido.patches import kaleido_grid  # pylint: disable=g-import-not-at-top
  from kaleido.utils import flops  # pylint: disable=g-import-not-at-top
  captioner, model = _random_captioner(size)
  count = _NUM_IMAGES.value
  rng = np.random.default_rng(0)
  features = tf.constant(rng.normal(size=(count, kaleido_grid.NUM_PATCHES, model.feature_size)),
                         tf.float32)
  boxes = tf.constant(rng.uniform(size=(count, kaleido_grid.NUM_PATCHES, 5)), tf.float32)
  decoder = caption_decoder.CachedDecoder(captioner, CLS, SEP, PAD)
  cached = tf.function(lambda f, b: decoder.beam_search(f, b, 1))
  cached(features, boxes)  # trace at the timed shapes
  start = time.perf_counter()
  cached_tokens = cached(features, boxes).numpy()
  cached_rate = count / (time.perf_counter() - start)
  uncached_count = min(_NUM_UNCACHED.value, count)
  step = _uncached_step(captioner, features[:uncached_count], boxes[:uncached_count])
  length = model.max_seq_length
  step(tf.fill([uncached_count, length], PAD), tf.constant(1), ())  # trace
  start = time.perf_counter()
  uncached_tokens, _, _ = beam_search.beam_search(step, (), uncached_count, 1, length, CLS, SEP,
                                                  PAD)
  uncached_tokens = uncached_tokens.numpy()
  uncached_rate = uncached_count / (time.perf_counter() - start)
  # FLOPs of one caption: with the cache, the patches' keys and values once and one position's
  # step per generated token; without it, one full encoder pass per generated token.
  one_feature, one_box = features[:1], boxes[:1]
  patch_cache = decoder._patch_cache(one_feature, one_box)  # pylint: disable=protected-access
  text_cache = decoder._empty_text_cache(patch_cache, 1)  # pylint: disable=protected-access
  patch_mask = decoder._visible[tf.newaxis, tf.newaxis]  # pylint: disable=protected-access
  tokens = tf.zeros([1, length], tf.int32)
  cached_flops = (flops.function_flops(decoder._patch_cache, one_feature, one_box) +  # pylint: disable=protected-access
                  (length - 1) * flops.function_flops(
                      lambda t: decoder._log_probs(t, tf.constant(5), text_cache, patch_cache,  # pylint: disable=protected-access
                                                   patch_mask)[0], tokens))
  one_step = _uncached_step(captioner, one_feature, one_box)
  full_pass = flops.function_flops(lambda t: one_step(t, tf.constant(5), ())[0], tokens)
  print(f"{size}: H={model.hidden_size}, L={model.num_layers}, {length} tokens, "
        f"{count} full-length captions ({uncached_count} without the cache); same tokens: "
        f"{np.array_equal(cached_tokens[:uncached_count], uncached_tokens)}")
  print(f"  with the cache:    {cached_rate:7.2f} captions/s, "
        f"{cached_flops / 1e9:8.2f} GFLOP per caption")
  print(f"  without the cache: {uncached_rate:7.2f} captions/s, "
        f"{full_pass * (length - 1) / 1e9:8.2f} GFLOP per caption ({length - 1} encoder passes)")
  print(f"  speed-up {cached_rate / uncached_rate:.1f}x")


def _check_run() -> None:
  from kaleido.demo import pipeline  # pylint: disable=g-import-not-at-top
  from kaleido.evaluation import model as evaluation_model  # pylint: disable=g-import-not-at-top
  eval_data = _EVAL_DATA.value
  if eval_data == "demo":
    eval_data = pipeline.demo_paths("workdir/demo").validation_dir
  for beam_size in (1, 3):
    results = {}
    for cache in (True, False):
      model = evaluation_model.load(_CHECKPOINT.value, eval_data, _BATCH_SIZE.value,
                                    caption_cache=cache)
      start = time.perf_counter()
      results[cache] = (model.captions(beam_size)[0], time.perf_counter() - start)
    (with_cache, cached_time), (without, uncached_time) = results[True], results[False]
    same = sum(with_cache[key] == without[key] for key in with_cache)
    print(f"beam {beam_size}: {same} of {len(with_cache)} captions the same with and without "
          f"the cache; {cached_time:.1f} s vs {uncached_time:.1f} s "
          f"({uncached_time / cached_time:.1f}x)")


def main(argv):
  del argv
  for size in _SIZES.value:
    _speed(size)
  if _CHECKPOINT.value:
    _check_run()


if __name__ == "__main__":
  app.run(main)
