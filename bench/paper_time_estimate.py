r"""Estimated time of the paper's recipe on 8 V100-class GPUs, from FLOPs counted on our models.

  python bench/paper_time_estimate.py

An estimate, not a measurement (no GPU here). For every stage of docs/reproducing-the-paper.md
it counts the FLOPs of one example on the paper-size models of this project (traced graphs,
kaleido/utils/flops.py: MatMul, BatchMatMul, Einsum, Conv2D at 2 FLOPs per multiply-add; the
same count BUILD_NOTES.md checks against this CPU's matmul peak), multiplies by the examples the
recipe's flag files process, and divides by 8 GPUs x an assumed sustained rate:
- float32: 15.7 TFLOP/s peak per V100 (SXM2) at 60% sustained (our paper-size step sustains
  66.8% of this CPU's fp32 matmul peak; large-matmul GPU kernels do about as well);
- mixed_float16: 125 TFLOP/s tensor-core peak at 30% sustained (memory-bound LayerNorm, softmax
  and the optimizer keep mixed-precision BERT training far below the tensor-core peak).
With the feature cache (the default, `--patch_features=cached`) the frozen ResNet-50 runs once per
image on its 74 patch variants (kaleido.feature_cache), training and evaluation read them, and a
training example costs 3 x the forward of everything else (backward = 2 x forward); with
`--patch_features=pixels` every training example also runs ResNet-50 on its 57 patches.
Evaluation is forward only, each image's patch features computed once and reused for all its
candidates, as evaluate.py does.
"""

import os


from absl import app
from absl import flags

_TRAIN_IMAGES = flags.DEFINE_integer("train_images", 260_490,
                                     "Rows of fashiongen_256_256_train.h5.")
_VALIDATION_IMAGES = flags.DEFINE_integer("validation_images", 32_528,
                                          "Rows of fashiongen_256_256_validation.h5.")
_GPUS = flags.DEFINE_integer("gpus", 8, "GPUs of the run.")
_PATCH_FEATURES = flags.DEFINE_enum("patch_features", "cached", ["cached", "pixels"],
                                    "train.py's --patch_features (cached: the default with the "
                                    "paper's frozen ResNet-50).")

# (name, flag file) of each training stage of the recipe.
STAGES = (("pre-training", "configs/pretrain_fashiongen.flags"),
          ("retrieval fine-tune", "configs/finetune_retrieval_fashiongen.flags"),
          ("category fine-tune", "configs/finetune_category_fashiongen.flags"),
          ("subcategory fine-tune", "configs/finetune_subcategory_fashiongen.flags"),
          ("caption fine-tune", "configs/finetune_caption_fashiongen.flags"))
V100_RATES = {"float32": 15.7e12 * 0.60, "mixed_float16": 125e12 * 0.30}  # FLOP/s sustained
PAPER_SIZE = dict(vocab_size=30522, hidden_size=768, num_layers=12, num_heads=12,
                  intermediate_size=3072, patch_cnn="resnet50")
TEXT_POSITIONS = 64  # [CLS] + caption + [SEP] + padding, the paper's text length
RETRIEVAL_PAIRS = 1000 * 101 * 5 * 2  # queries x candidates x draws x directions


def flag_values(path: str) -> dict[str, str]:
  """`--name=value` lines of a flag file (comments skipped)."""
  values = {}
  with open(path, encoding="utf-8") as f:
    for line in f:
      line = line.strip()
      if line.startswith("--") and "=" in line:
        name, _, value = line[2:].partition("=")
        values[name] = value
  return values


def forward_flops(task: str) -> tuple[float, float]:
  """(patch embedder forward, everything else forward) FLOPs of one example of `task`."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from kaleido import config as config_lib  # pylint: disable=g-import-not-at-top
  from kaleido.model import backbone  # pylint: disable=g-import-not-at-top
  from kaleido.model import kaleido_bert  # pylint: disable=g-import-not-at-top
  from kaleido.model import flop_count  # pylint: disable=g-import-not-at-top
  model = config_lib.KaleidoBertConfig(**PAPER_SIZE)
  if task == config_lib.PRETRAIN:
    built = kaleido_bert.build_pretrainer(model)
    specs = kaleido_bert.pretraining_input_specs(model, config_lib.PretrainingConfig())
  else:
    built = kaleido_bert.build_finetune_model(config_lib.TaskConfig(
        name=task, finetune=config_lib.FinetuneConfig(num_classes=48)), model)
    specs = backbone.input_specs(model)
  inputs = {name: tf.zeros([1, *spec.shape[1:]], spec.dtype) for name, spec in specs.items()}
  return flop_count.forward_flops(built, inputs)


def _hours(total_flops: float, precision: str) -> float:
  return total_flops / (_GPUS.value * V100_RATES[precision]) / 3600


def main(argv):
  del argv
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  tasks = {"pre-training": "pretrain", "retrieval fine-tune": "retrieval",
           "category fine-tune": "category", "subcategory fine-tune": "subcategory",
           "caption fine-tune": "caption"}
  from kaleido.patches import variants  # pylint: disable=g-import-not-at-top
  costs = {task: forward_flops(task) for task in set(tasks.values())}
  cached = _PATCH_FEATURES.value == "cached"
  per_patch = costs["retrieval"][0] / variants.NUM_PATCHES
  images = _TRAIN_IMAGES.value + _VALIDATION_IMAGES.value
  rows = []
  if cached:
    per_image = variants.NUM_VARIANTS * per_patch
    rows.append(("feature cache (once)", f"{images:,} images", per_image, images * per_image))
  for stage, flag_file in STAGES:
    values = flag_values(os.path.join(repo, flag_file))
    examples = int(values["train_steps"]) * int(values["batch_size"])
    patch_cnn, rest = costs[tasks[stage]]
    per_example = (0.0 if cached else patch_cnn) + 3 * rest
    rows.append((stage, f"{examples / _TRAIN_IMAGES.value:.1f} epochs", per_example,
                 examples * per_example))
  validation_patch_cnn = 0.0 if cached else _VALIDATION_IMAGES.value * costs["retrieval"][0]
  rest = costs["retrieval"][1]
  rows.append(("ITR + TIR sample-100", f"{RETRIEVAL_PAIRS:,} pairs", rest,
               RETRIEVAL_PAIRS * rest + validation_patch_cnn))
  rest = costs["caption"][1]
  max_steps = TEXT_POSITIONS - 1
  rows.append(("captioning (greedy)", f"{_VALIDATION_IMAGES.value:,} images", max_steps * rest,
               _VALIDATION_IMAGES.value * max_steps * rest + validation_patch_cnn))
  print(f"{'stage':24s} {'work':>18s} {'GFLOP/example':>14s} {'PFLOP':>9s} "
        f"{'h fp32':>8s} {'h fp16 mixed':>13s}   ({_GPUS.value} x V100)")
  total = 0.0
  for stage, work, per_example, flop_count in rows:
    total += flop_count
    print(f"{stage:24s} {work:>18s} {per_example / 1e9:14.1f} {flop_count / 1e15:9.1f} "
          f"{_hours(flop_count, 'float32'):8.1f} {_hours(flop_count, 'mixed_float16'):13.1f}")
  print(f"{'all':24s} {'':>18s} {'':>14s} {total / 1e15:9.1f} {_hours(total, 'float32'):8.1f} "
        f"{_hours(total, 'mixed_float16'):13.1f}")
  print("Captioning is an upper bound: every caption decoded to all 63 positions without a "
        "key/value cache (each step one full encoder pass).")

if __name__ == "__main__":
  app.run(main)
