r"""Pre-training speed against this machine's matmul peak (a benchmark, not a test).

  python bench/bench_train.py                       # paper and demo sizes, fp32 and bf16
  python bench/bench_train.py --sizes paper --precisions none --steps 4 --jit_compile
  python bench/bench_train.py --sizes demo --precisions none --patch_features cached \
      --itm_negatives 0,1,3 --text full,trimmed
  python bench/bench_train.py --sizes minilm --precisions none --patch_features cached \
      --itm_unmasked --phases every,matching

For each (size, precision, patch features) it runs, in a fresh process, the real training step of
kaleido.training.trainer (model, seven losses, masking and the tf.data input pipeline on a prepared
demo folder) and prints examples/s, the counted FLOPs per example (frozen ResNet forward once, the
rest forward + backward = 3x forward) and the achieved FLOP/s as a share of the float32 matmul peak
measured in the same run. It also prints the input pipeline's own examples/s. `--patch_features`
measures the pixel path (the patch CNN at every step) and the cached path (features computed once
by kaleido.feature_cache, whose one-time build it times) side by side, and their speed ratio.
`--itm_negatives` measures ITM groups made in the step (--negatives_per_positive=K, listwise; 0:
the pipeline's negatives), `--text` the text cut to each batch's longest (--trim_text) or kept
at full length, and `--phases` the step of every loss against the ITM-only step of
--matching_first_steps (with `--itm_unmasked`, as configs/demo_pretrain_bert.flags trains: that
step skips the masked pass), each against the first value listed. `minilm` is the shape of
all-MiniLM-L6-v2 (the demo's pretrained start; random weights: speed does not depend on them).

`--sizes reference` measures, the same way, the bare tf-models-official BertEncoderV2 training step
of the issue's yardstick (paper-size encoder, 64 text + 55 patch positions fed as 119 token ids,
random inputs, no embeddings of patches, no ResNet, no heads beyond a scalar loss): the share of
peak a plain BERT step reaches on this machine.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

_SIZES = flags.DEFINE_list("sizes", ["paper", "demo"],
                           "Model sizes to measure: paper, demo, reference (bare BertEncoderV2).")
_PRECISIONS = flags.DEFINE_list("precisions", ["none", "mixed_bfloat16"], "Precision policies.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 0, "Global batch size (0: each size's own, "
                                   "the demo flag file's 32, 16 at paper size).")
_STEPS = flags.DEFINE_integer("steps", 6, "Timed steps (after 2 warm-up steps).")
_JIT = flags.DEFINE_bool("jit_compile", False, "XLA-compile the forward and backward pass.")
_PATCH_FEATURES = flags.DEFINE_list("patch_features", ["pixels", "cached"],
                                    "Input paths to measure: pixels, cached.")
_ITM_NEGATIVES = flags.DEFINE_list("itm_negatives", ["0"],
                                   "ITM negatives made in the step per positive (0: pipeline's).")
_TEXT = flags.DEFINE_list("text", ["trimmed"], "Text positions: trimmed, full.")
_PHASES = flags.DEFINE_list("phases", ["every"], "Training steps: every (all losses), matching "
                            "(--matching_first_steps's ITM-only steps).")
_ITM_UNMASKED = flags.DEFINE_bool("itm_unmasked", False, "ITM reads the unmasked pass.")
_DATA = flags.DEFINE_string("data", "", "A prepared folder (default: a fresh demo one).")
_SINGLE = flags.DEFINE_string("single", "", "Internal: measure one "
                              "`size,precision,features,K,text,phase` and exit.")

SIZES = {
    "paper": dict(hidden_size=768, num_layers=12, num_heads=12, intermediate_size=3072,
                  patch_cnn="resnet50"),
    # configs/demo_pretrain.flags
    "demo": dict(hidden_size=128, num_layers=3, num_heads=4, intermediate_size=512,
                 patch_cnn="small"),
    # all-MiniLM-L6-v2, configs/demo_pretrain_bert.flags
    "minilm": dict(hidden_size=384, num_layers=6, num_heads=12, intermediate_size=1536,
                   patch_cnn="small"),
}
BATCH_SIZES = {"paper": 16, "demo": 32, "minilm": 32, "reference": 16}


def _batch_size(size: str) -> int:
  return _BATCH_SIZE.value or BATCH_SIZES[size]


def matmul_peak(dtype, size: int = 2048, chain: int = 8, repeats: int = 4) -> float:
  """Best FLOP/s of chained square matmuls (chained so no multiplication can be skipped)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  a = tf.cast(tf.random.normal([size, size]), dtype)
  b = tf.cast(tf.random.normal([size, size]) / size ** 0.5, dtype)

  @tf.function
  def chained(x):
    for _ in range(chain):
      x = tf.matmul(x, b)
    return x

  chained(a).numpy()
  best = 0.0
  for _ in range(repeats):
    start = time.perf_counter()
    chained(a).numpy()
    best = max(best, 2 * size ** 3 * chain / (time.perf_counter() - start))
  return best


def _examples_per_second(run_step, batch_size: int) -> float:
  """Examples/s of `run_step()` (one blocking training step), after two warm-up steps."""
  for _ in range(2):
    run_step()
  start = time.perf_counter()
  for _ in range(_STEPS.value):
    run_step()
  return _STEPS.value * batch_size / (time.perf_counter() - start)


def _training_flops(trainer, batch, matching_only: bool) -> tuple[float, float]:
  """(frozen patch CNN forward FLOPs, FLOPs of everything else forward) per example."""
  from kaleido.model import flop_count  # pylint: disable=g-import-not-at-top
  patch_cnn, rest = flop_count.forward_flops(
      trainer.model, trainer.task.model_inputs(trainer.model, batch),
      matching_only=matching_only)
  size = batch["patch_boxes"].shape[0]
  return patch_cnn / size, rest / size


def measure_one(size: str, precision: str, patch_features: str, data: str,
                itm_negatives: int = 0, text: str = "trimmed", phase: str = "every") -> dict:
  """Runs the trainer's step on `data` and returns the figures (run in its own process)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from kaleido import config as config_lib  # pylint: disable=g-import-not-at-top
  from kaleido.records import manifest as manifest_lib  # pylint: disable=g-import-not-at-top
  from kaleido.tasks import factory  # pylint: disable=g-import-not-at-top
  from kaleido.text import vocab  # pylint: disable=g-import-not-at-top
  from kaleido.training import trainer as trainer_lib  # pylint: disable=g-import-not-at-top

  peak = matmul_peak(tf.float32)
  manifest = manifest_lib.load(data)
  batch_size = _batch_size(size)
  with tempfile.TemporaryDirectory() as model_dir:
    config = config_lib.ExperimentConfig(
        data=config_lib.DataConfig(train_data=data, vocab_file=manifest.vocab_file,
                                   vocab_hash=manifest.vocab_hash,
                                   max_seq_length=manifest.max_seq_length,
                                   patch_size=manifest.patch_size,
                                   patch_features=patch_features, trim_text=text == "trimmed",
                                   feature_cache_dir=os.path.join(model_dir, "cache")),
        model=config_lib.KaleidoBertConfig(
            vocab_size=len(vocab.read_vocab(manifest.vocab_file)),
            max_seq_length=manifest.max_seq_length, patch_size=manifest.patch_size,
            **SIZES[size]),
        init=config_lib.InitConfig(patch_cnn_weights="random"),
        task=config_lib.TaskConfig(pretraining=config_lib.PretrainingConfig(
            itm_negatives_per_positive=itm_negatives,
            itm_loss="listwise" if itm_negatives else "binary", itm_unmasked=_ITM_UNMASKED.value,
            matching_first_steps=999 if phase == "matching" else 0)),  # of train_steps=1000
        optimizer=config_lib.OptimizerConfig(warmup_steps=10),
        training=config_lib.TrainingConfig(model_dir=model_dir, train_steps=1000,
                                           batch_size=batch_size,
                                           mixed_precision=precision, jit_compile=_JIT.value))
    task = factory.create_task(config_lib.validate(config))
    trainer = trainer_lib.Trainer(config, task)
    cache_start = time.perf_counter()
    task.prepare_inputs(trainer.model)
    cache_seconds = time.perf_counter() - cache_start
    iterator = iter(task.dataset(batch_size, 0, None))
    for _ in range(3):  # the shuffle buffer fills first
      next(iterator)
    pipeline_start = time.perf_counter()
    for _ in range(20):
      next(iterator)
    pipeline_rate = 20 * batch_size / (time.perf_counter() - pipeline_start)
    step_phase = task.phase(0)
    patch_cnn_flops, rest_flops = _training_flops(trainer, next(iterator),
                                                  matching_only=step_phase is not None)
    distributed = iter(trainer.strategy.distribute_datasets_from_function(
        lambda context: task.dataset(batch_size, 0, context)))
    no_stop = tf.constant(0.0)
    rate = _examples_per_second(lambda: float(trainer._train_step(  # pylint: disable=protected-access
        next(distributed), no_stop, step_phase)[0]["total"]), batch_size)
  step_flops = patch_cnn_flops + 3 * rest_flops
  return {"size": size, "precision": precision, "patch_features": patch_features,
          "cache_build_s": cache_seconds if patch_features == "cached" else 0.0,
          "num_images": manifest.num_examples, "examples_per_s": rate,
          "gflop_per_example": step_flops / 1e9, "patch_cnn_gflop": patch_cnn_flops / 1e9,
          "rest_forward_gflop": rest_flops / 1e9, "fp32_peak_gflops": peak / 1e9,
          "share_of_fp32_peak": rate * step_flops / peak, "pipeline_examples_per_s": pipeline_rate}


def measure_reference(precision: str) -> dict:
  """The bare BertEncoderV2 training step at paper size on random inputs (own process)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tf_keras  # pylint: disable=g-import-not-at-top
  from official.nlp.modeling import networks  # pylint: disable=g-import-not-at-top
  from kaleido.utils import flops  # pylint: disable=g-import-not-at-top

  peak = matmul_peak(tf.float32)
  tf_keras.mixed_precision.set_global_policy(precision if precision != "none" else "float32")
  size = SIZES["paper"]
  length = 64 + 55
  encoder = networks.BertEncoderV2(
      vocab_size=30522, hidden_size=size["hidden_size"], num_layers=size["num_layers"],
      num_attention_heads=size["num_heads"], inner_dim=size["intermediate_size"],
      max_sequence_length=512)
  optimizer = tf_keras.optimizers.AdamW(learning_rate=2e-5, weight_decay=1e-4)
  batch = _batch_size("reference")
  inputs = {"input_word_ids": tf.random.uniform([batch, length], 0, 30522, tf.int32),
            "input_mask": tf.ones([batch, length], tf.int32),
            "input_type_ids": tf.zeros([batch, length], tf.int32)}

  @tf.function(jit_compile=_JIT.value)
  def step(features):
    with tf.GradientTape() as tape:
      outputs = encoder(features, training=True)
      loss = tf.reduce_mean(tf.cast(outputs["sequence_output"], tf.float32) ** 2)
    variables = encoder.trainable_variables
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return loss

  forward_flops = flops.function_flops(lambda x: encoder(x, training=False), inputs) / batch
  rate = _examples_per_second(lambda: step(inputs).numpy(), batch)
  return {"size": "reference", "precision": precision, "patch_features": "-",
          "cache_build_s": 0.0, "num_images": 0, "examples_per_s": rate,
          "gflop_per_example": 3 * forward_flops / 1e9, "patch_cnn_gflop": 0.0,
          "rest_forward_gflop": forward_flops / 1e9, "fp32_peak_gflops": peak / 1e9,
          "share_of_fp32_peak": rate * 3 * forward_flops / peak,
          "pipeline_examples_per_s": float("nan")}


def _demo_folder(tmp: str) -> str:
  from kaleido.demo import pipeline  # pylint: disable=g-import-not-at-top
  return pipeline.ensure_demo_data(pipeline.DemoConfig(
      work_dir=tmp, num_train_products=150, num_validation_products=5), log=lambda _: None
                                   ).train_dir


def main(argv):
  del argv
  if _SINGLE.value:
    size, precision, patch_features, itm_negatives, text, phase = _SINGLE.value.split(",")
    result = (measure_reference(precision) if size == "reference"
              else measure_one(size, precision, patch_features, _DATA.value,
                               int(itm_negatives), text, phase))
    print(json.dumps(result))
    return
  unknown = [size for size in _SIZES.value if size not in SIZES and size != "reference"]
  if unknown:
    raise app.UsageError(f"--sizes names unknown sizes {unknown}; use {', '.join(SIZES)} or "
                         "reference.")
  paths = [path for path in _PATCH_FEATURES.value if path not in ("pixels", "cached")]
  if paths:
    raise app.UsageError(f"--patch_features names unknown paths {paths}; use pixels, cached.")
  if [text for text in _TEXT.value if text not in ("trimmed", "full")]:
    raise app.UsageError(f"--text names {_TEXT.value}; use trimmed, full.")
  if [phase for phase in _PHASES.value if phase not in ("every", "matching")]:
    raise app.UsageError(f"--phases names {_PHASES.value}; use every, matching.")
  if not all(k.isdigit() for k in _ITM_NEGATIVES.value):
    raise app.UsageError(f"--itm_negatives must be counts >= 0, not {_ITM_NEGATIVES.value}.")
  with tempfile.TemporaryDirectory() as tmp:
    needs_data = any(size != "reference" for size in _SIZES.value)
    data = _DATA.value or (_demo_folder(tmp) if needs_data else "")
    print(f"batch {_BATCH_SIZE.value or BATCH_SIZES}, {_STEPS.value} timed steps, "
          f"{os.cpu_count()} cpus, "
          f"XLA {'on' if _JIT.value else 'off'}")
    for size in _SIZES.value:
      for precision in _PRECISIONS.value:
        rates = {}
        for variant in _variants(size):
          r = _measure_in_process(size, precision, data, *variant)
          if r is None:
            continue
          rates[variant] = r["examples_per_s"]
          patch_features, itm_negatives, text, phase = variant
          cache = (f"  cache built once in {r['cache_build_s']:.1f} s for {r['num_images']} "
                   "images" if patch_features == "cached" else "")
          groups = (f"  ITM groups K={itm_negatives} (their extra pass is not in the FLOPs)"
                    if itm_negatives else "")
          print(f"{size:6s} {precision:14s} {patch_features:6s} {text:7s} {phase:8s} "
                f"{r['examples_per_s']:7.2f} "
                f"examples/s  {r['gflop_per_example']:6.1f} GFLOP/example (patch CNN fwd "
                f"{r['patch_cnn_gflop']:.1f} + 3 x {r['rest_forward_gflop']:.1f})  "
                f"{100 * r['share_of_fp32_peak']:5.1f}% of fp32 peak "
                f"({r['fp32_peak_gflops']:.0f} GFLOP/s)  input pipeline "
                f"{r['pipeline_examples_per_s']:.0f} examples/s{groups}{cache}")
        if len(rates) > 1:
          first, *others = rates
          for other in others:
            print(f"{size:6s} {precision:14s} {' '.join(map(str, other))} / "
                  f"{' '.join(map(str, first))}: {rates[other] / rates[first]:.2f}x")


def _variants(size: str) -> list[tuple[str, int, str, str]]:
  """(patch features, ITM negatives, text, phase) combinations measured at `size`."""
  if size == "reference":
    return [("-", 0, "full", "every")]
  return [(patch_features, int(k), text, phase) for patch_features in _PATCH_FEATURES.value
          for k in _ITM_NEGATIVES.value for text in _TEXT.value for phase in _PHASES.value]


def _measure_in_process(size: str, precision: str, data: str, patch_features: str,
                        itm_negatives: int, text: str, phase: str):
  """measure_one or measure_reference in a fresh process; None (with its error) on failure."""
  result = subprocess.run(
      [sys.executable, __file__,
       f"--single={size},{precision},{patch_features},{itm_negatives},{text},{phase}",
       f"--data={data}", f"--batch_size={_BATCH_SIZE.value}", f"--steps={_STEPS.value}",
       f"--jit_compile={_JIT.value}", f"--itm_unmasked={_ITM_UNMASKED.value}"],
      capture_output=True, text=True, check=False)
  if result.returncode:
    print(f"{size} {precision} {patch_features}: failed\n{result.stderr[-2000:]}")
    return None
  return json.loads(result.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
  app.run(main)
