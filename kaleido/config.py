"""The experiment config: one frozen dataclass tree per training run.

Every run train.py, data/train_aag.py, data/train_foreground.py and tools/pretrain_patch_cnn.py
start is one `ExperimentConfig`:

  task        which task, and its own settings (pre-training losses and masking, the downstream
              head, the captioner's or the UNet's objective)
  data        the prepared folders it reads and what they were prepared with
  model       the architecture: Kaleido-BERT, the SAT captioner, the UNet or a patch CNN
  init        where the weights start (a BERT checkpoint, a pre-training run, CNN weights)
  optimizer   AdamW or Adam, the learning-rate schedule, clipping and learning-rate groups
  training    steps, batch, strategy, precision, checkpoints and summaries
  evaluation  held-out evaluation during training

The entry points build it from flags, `validate` checks it as a whole (the one place), and the
trainer saves it whole as `run_config.json` in the model_dir, from which fine-tuning, evaluation
and export rebuild the run (`load`). Library code receives these objects and never reads flags.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from typing import Any, ClassVar

from kaleido import errors

RUN_CONFIG_NAME = "run_config.json"
FORMAT = "kaleido-experiment/3"
# The format before the patch CNN's rename: its runs' checkpoints and settings use the old names.
_FORMAT_BEFORE_PATCH_CNN = "kaleido-experiment/2"

# Tasks: pre-training (paper 3.4-3.6), the downstream tasks (4.2), and the generators' own nets.
PRETRAIN = "pretrain"
FINETUNE_TASKS = ("retrieval", "category", "subcategory", "caption")
CAPTIONER = "aag_captioner"  # the alignment generator's SAT captioner (3.3)
FOREGROUND = "foreground_unet"  # the patch generator's UNet (3.2, footnote 4)
PATCH_CNN_WORDS = "patch_cnn_words"  # word-prediction pre-training of the patch CNN
TASK_NAMES = (PRETRAIN, *FINETUNE_TASKS, CAPTIONER, FOREGROUND, PATCH_CNN_WORDS)

CNNS = ("resnet50", "small")  # the patch embedder's CNN and the captioner's
# Pixels of the captioner's input per attention cell: the small CNN has four stride-2
# convolutions, ResNet-50's last block (conv5) is at stride 32 (224 px -> 7 x 7, 448 -> 14 x 14).
CAPTIONER_STRIDES = {"small": 16, "resnet50": 32}
MASKING_MODES = ("agm", "random")
# Transformer and MLM-transform activation: exact erf GELU (Hugging Face's "gelu") or its tanh
# approximation (Google BERT's and Model Garden's "gelu").
HIDDEN_ACTS = ("gelu", "gelu_approximate")
# What the pooler (and so ITM, retrieval and classification) reads: the [CLS] state, as BERT, or
# the mean of the real text states, as sentence-transformer checkpoints were trained to be read.
POOLINGS = ("cls", "mean_text")
KALEIDO_TASKS = ("rr", "jps", "cp", "g2cm", "b2cm")
TASK_LEVELS = {"rr": 1, "jps": 2, "cp": 3, "g2cm": 4, "b2cm": 5}  # the level each task reads
PAPER_LOSSES = ("amlm", "itm") + KALEIDO_TASKS  # the paper's seven (Eq. 8)
# Beyond the paper: image-text contrastive alignment of text-only and image-only passes.
ALL_LOSSES = PAPER_LOSSES + ("itc",)
MATCHING_LOSSES = ("itm", "itc")  # what PretrainingConfig.matching_first_steps trains first
CAPTION_MODES = ("autoregressive", "one_shot")
# The text side of retrieval: the product name (title, the paper's section 4.2) or the text the
# data was prepared with (data/prepare.py --text_field, the description by default).
RETRIEVAL_TEXTS = ("name", "description")
FOREGROUND_MASKS = ("groundtruth", "classical")
OPTIMIZERS = ("adamw", "adam")
SCHEDULES = ("linear", "constant")  # linear: warm-up, then linear decay to 0
STRATEGIES = ("one_device", "mirrored", "multi_worker_mirrored", "tpu")
INPUT_MODES = ("auto", "global", "files")
MIXED_PRECISION = ("none", "mixed_bfloat16", "mixed_float16")
# Retrieval fine-tuning's ITM loss: binary cross-entropy of every pair, or listwise (softmax
# over a positive and its K in-step negatives; needs negatives_per_positive > 0).
ITM_LOSSES = ("binary", "listwise")
# What the patch embedder reads: features of a frozen patch CNN computed once per image
# (kaleido.feature_cache), the pixels at every step, or "auto": cached whenever it is frozen.
PATCH_FEATURES = ("auto", "cached", "pixels")


class ConfigError(errors.KaleidoError):
  """An experiment config that cannot run; the message names the setting and the fix."""


# ---------------------------------------------------------------------------------------------
# task


@dataclasses.dataclass(frozen=True)
class PretrainingConfig:
  """Pre-training losses (paper Eq. 8: all weights 1) and masking (3.4)."""
  enabled: tuple[str, ...] = PAPER_LOSSES  # any subset of ALL_LOSSES with "amlm"; Table 4
  weights: tuple[tuple[str, float], ...] = tuple((name, 1.0) for name in ALL_LOSSES)
  masking: str = "agm"  # or "random"
  max_predictions: int = 10  # masked text tokens per example at most
  mask_fraction: float = 0.15
  num_cp: int = 1  # L3 patches camouflaged
  num_g2cm: int = 2  # L4 patches greyed
  num_b2cm: int = 3  # L5 patches blanked
  itm_negative_fraction: float = 0.5
  # ITM reads a joint pass over the restored inputs (masked tokens and greyed/blanked patches
  # back) instead of the masked pass the other losses read: one more encoder pass per step.
  itm_unmasked: bool = False
  hard_negatives: bool = False  # negatives from the same subcategory when available
  # K > 0: no negative pairs in the input pipeline; ITM scores groups made in the step instead
  # (kaleido.tasks.itm_groups): each pair's restored text with K other images of the global
  # batch and its restored image with K other texts, in one more joint pass; `itm_loss` (one of
  # ITM_LOSSES) over them.
  itm_negatives_per_positive: int = 0
  itm_loss: str = "binary"
  itm_group_every: int = 1  # one pair in this many of each replica's batch gets a group
  # The first N steps minimise the matching losses alone (ITM, and ITC when enabled); the other
  # losses join at step N. A pretrained BERT's kept layers learn ITM alone, but beside AMLM from
  # the first step it stays at chance (issue #34). Those steps compute only what ITM and ITC
  # read (no masked pass when ITM reads the unmasked one). 0: every loss from the start (Eq. 8).
  matching_first_steps: int = 0

  def weight(self, name: str) -> float:
    """Loss weight of `name`; 0 when the task is disabled."""
    return dict(self.weights).get(name, 0.0) if name in self.enabled else 0.0

  def is_enabled(self, name: str) -> bool:
    return name in self.enabled


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
  """A downstream task's head and data (paper 4.2)."""
  num_classes: int = 0  # category / subcategory: size of the label map
  caption_mode: str = "autoregressive"  # or "one_shot" (the paper's: all positions [MASK])
  classifier_dropout: float = 0.1
  negative_fraction: float = 0.5  # retrieval: share of pairs given another product's image
  # retrieval: share of those negatives drawn from the same subcategory (when the batch has one;
  # the rest from any other product): 1.0 matches the paper's sample-100 negatives.
  negative_same_subcategory: float = 1.0
  # retrieval: K > 0 makes the ITM negatives inside the training step instead (kaleido.tasks.
  # itm_groups): K negative images per text and K negative texts per image from the global batch;
  # `mined_negatives` draws them in proportion to the ITC similarity (needs itc_weight > 0).
  negatives_per_positive: int = 0
  mined_negatives: bool = False
  # retrieval, with mined_negatives: > 0 draws them by the cross-encoder's own margin among each
  # query's this many best other products by ITC (an extra no-gradient pass over those pairs).
  margin_shortlist: int = 0
  # retrieval, with negatives_per_positive: > 0 also draws them from this many matched pairs of
  # earlier global batches (kaleido.tasks.pair_queue; a multiple of the global batch size).
  negative_queue: int = 0
  # retrieval: > 0 builds each batch from runs of this many examples of one subcategory, so the
  # in-batch negatives of ITC and of the step's groups include near neighbours; 0: shuffled.
  subcategory_runs: int = 0
  itm_loss: str = "binary"  # one of ITM_LOSSES: over every pair, or softmax over each group
  group_every: int = 1  # one pair in this many of each replica's batch gets a group
  retrieval_text: str = "name"  # retrieval: one of RETRIEVAL_TEXTS
  # retrieval: weight of the image-text contrastive loss trained beside ITM (the first stage of
  # two-stage search, kaleido.search); 0: off, the paper's fine-tuning.
  itc_weight: float = 0.0


@dataclasses.dataclass(frozen=True)
class CaptionerTrainingConfig:
  """The SAT captioner's objective (Xu et al. 2015, Eq. 14) and augmentation."""
  attention_reg: float = 1.0  # lambda of the doubly stochastic regulariser
  word_dropout: float = 0.0  # share of teacher-forced input words replaced by [PAD]
  flip: bool = True  # random horizontal flips of the crops


@dataclasses.dataclass(frozen=True)
class ForegroundTrainingConfig:
  """Where the UNet's target masks come from."""
  masks: str = "groundtruth"  # the demo's sidecar, or the classical estimator's masks
  validation_fraction: float = 0.1  # products held out for the box IoU report


@dataclasses.dataclass(frozen=True)
class TaskConfig:
  """Which task runs; only the settings of its own family are read."""
  name: str = PRETRAIN  # one of TASK_NAMES
  pretraining: PretrainingConfig = PretrainingConfig()
  finetune: FinetuneConfig = FinetuneConfig()
  captioner: CaptionerTrainingConfig = CaptionerTrainingConfig()
  foreground: ForegroundTrainingConfig = ForegroundTrainingConfig()

  @property
  def is_finetune(self) -> bool:
    return self.name in FINETUNE_TASKS

  @property
  def name_as_text(self) -> bool:
    """Whether the task reads the product names as its text (title-based retrieval)."""
    return self.name == "retrieval" and self.finetune.retrieval_text == "name"

  @property
  def has_contrastive_head(self) -> bool:
    """Whether the task's model carries the ITC head (pre-training with itc, or retrieval with
    an itc_weight)."""
    if self.name == PRETRAIN:
      return self.pretraining.is_enabled("itc")
    return self.name == "retrieval" and self.finetune.itc_weight > 0


# ---------------------------------------------------------------------------------------------
# data


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """What the run reads. `train_data` is a folder prepared by data/prepare.py (for the UNet: a
  catalog file), or `demo`; the vocabulary and shapes are the manifest's."""
  train_data: str = "demo"  # `demo`: the embedded demo catalog, prepared under `demo_dir`
  eval_data: str = ""  # held-out prepared folder for evaluation during training, or `demo`
  demo_dir: str = "workdir/demo"  # where the demo's folders are made on first use
  vocab_file: str = ""
  vocab_hash: str = ""
  max_seq_length: int = 64  # text positions: [CLS] text [SEP] + padding
  patch_size: int = 64
  label_names: tuple[str, ...] = ()  # category / subcategory names by class id
  patch_features: str = "auto"  # one of PATCH_FEATURES
  feature_cache_dir: str = ""  # where feature caches live; "": inside each prepared folder
  # Cut each batch's text positions to its longest text (rounded up to 16): the same outputs at
  # every real position, less work; never on a TPU, which needs static shapes (`trims_text`).
  trim_text: bool = True


# ---------------------------------------------------------------------------------------------
# model


@dataclasses.dataclass(frozen=True)
class KaleidoBertConfig:
  """Sizes of Kaleido-BERT. The paper: L=12, H=768, A=12, ResNet-50 patch features."""
  kind: ClassVar[str] = "kaleido_bert"
  vocab_size: int = 30522
  hidden_size: int = 768
  num_layers: int = 12
  num_heads: int = 12
  intermediate_size: int = 3072
  max_seq_length: int = 64
  num_patches: int = 55
  patch_size: int = 64
  patch_cnn: str = "resnet50"  # "small": a few conv layers, for quick runs and tests
  patch_cnn_trainable: bool = False  # frozen: inference-mode batch norm, no gradient
  feature_size: int = 2048  # patch feature size (ResNet-50 global pool)
  dropout_rate: float = 0.1
  attention_dropout_rate: float = 0.1
  initializer_range: float = 0.02
  hidden_act: str = "gelu_approximate"  # one of HIDDEN_ACTS
  pooling: str = "cls"  # one of POOLINGS
  # The kaleido levels the encoder sees (Table 4's fixed-scale columns: e.g. (5,) for the 5x5
  # grid alone); the patches of the other levels are left out of attention.
  kaleido_levels: tuple[int, ...] = (1, 2, 3, 4, 5)
  # Blocks that see within each modality only before the others fuse text and patches (a late
  # fusion, as ALBEF's; 0: the paper's single stream, every block across both).
  fusion_layer: int = 0
  # The ITC head (when the itc loss is on): embedding size and initial softmax temperature.
  contrastive_dim: int = 256
  contrastive_temperature: float = 0.07

  @property
  def sequence_length(self) -> int:
    return self.max_seq_length + self.num_patches


@dataclasses.dataclass(frozen=True)
class CaptionerConfig:
  """The Show-Attend-Tell captioner and the vocabulary it speaks ([CLS] starts a caption,
  [SEP] ends it, as in the prepared TFRecords)."""
  kind: ClassVar[str] = "sat_captioner"
  vocab_size: int = 0
  vocab_hash: str = ""
  cls_id: int = 2
  sep_id: int = 3
  pad_id: int = 0
  cnn: str = "small"
  image_size: int = 128  # side of the square product crop the captioner sees
  feature_size: int = 256  # annotation vectors: projected CNN features
  embedding_size: int = 128
  hidden_size: int = 256  # LSTM units
  attention_size: int = 128
  dropout: float = 0.3
  max_length: int = 64  # tokens of a caption including [CLS] and [SEP]
  cnn_trainable: bool = True

  @property
  def grid_size(self) -> int:
    """Attention cells per side of the crop."""
    return self.image_size // CAPTIONER_STRIDES[self.cnn]


@dataclasses.dataclass(frozen=True)
class UNetConfig:
  """The UNet foreground net; `input_size` must be divisible by 2**depth."""
  kind: ClassVar[str] = "unet"
  input_size: int = 128
  base_filters: int = 16
  depth: int = 3


@dataclasses.dataclass(frozen=True)
class PatchCnnConfig:
  """A patch CNN alone (its word-prediction pre-training)."""
  kind: ClassVar[str] = "patch_cnn"
  patch_cnn: str = "small"
  patch_size: int = 64
  feature_size: int = 2048


ModelConfig = KaleidoBertConfig | CaptionerConfig | UNetConfig | PatchCnnConfig
MODEL_KINDS = {cls.kind: cls for cls in typing.get_args(ModelConfig)}
TASK_MODEL_KINDS = {**{name: KaleidoBertConfig.kind for name in (PRETRAIN, *FINETUNE_TASKS)},
                    CAPTIONER: CaptionerConfig.kind, FOREGROUND: UNetConfig.kind,
                    PATCH_CNN_WORDS: PatchCnnConfig.kind}


# ---------------------------------------------------------------------------------------------
# init, optimizer, training, evaluation


@dataclasses.dataclass(frozen=True)
class InitConfig:
  """Where the weights start (not read when a run resumes from its own checkpoint)."""
  bert_init: str = ""  # a BERT checkpoint for the text side and encoder
  init_checkpoint: str = ""  # fine-tuning: a pre-training model_dir or checkpoint
  patch_cnn_weights: str = ""  # the patch (or captioner) CNN's weights: a Keras .h5 or checkpoint
  # patch_cnn_weights="catalog": steps of the word-prediction pre-training of the patch CNN on the
  # training data's own pairs (batch 64) that train.py runs first.
  catalog_patch_cnn_steps: int = 800
  # Load the BERT checkpoint's pooler (off: a fresh pooler at the full learning rate, e.g. for
  # sentence-transformer checkpoints whose pooler was never trained).
  bert_pooler: bool = True
  # The top N encoder layers keep their random initial weights instead of the checkpoint's and
  # train at the full learning rate (re-initialising the top of a pretrained BERT).
  bert_reinit_layers: int = 0
  # The patch LayerNorm starts as the checkpoint's text (embedding) LayerNorm instead of at
  # gamma 1, beta 0, so patch tokens enter the pretrained layers at the text tokens' scale.
  patch_norm_from_text: bool = False
  # Every level's patch projection starts as a ridge map from the training crops' patch features
  # to the mean word embedding of their texts (kaleido.pretrained.patch_words).
  patch_projection_from_words: bool = False


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
  """AdamW (paper 4.1: lr 2e-5, weight decay 1e-4, 5K warm-up) or Adam; a variable's rate is
  learning_rate x its group's multiplier (see kaleido.training.optimization)."""
  name: str = "adamw"  # one of OPTIMIZERS; adam: no weight decay, epsilon 1e-7
  learning_rate: float = 2e-5
  schedule: str = "linear"  # one of SCHEDULES
  warmup_steps: int = 5000
  weight_decay: float = 1e-4
  clip_norm: float = 1.0  # of the global gradient, after the cross-replica sum; 0: no clipping
  # Learning rate of the text side and encoder (what a BERT checkpoint supplies) relative to
  # learning_rate, and its decay per encoder layer from the top down (1: no decay).
  pretrained_lr_multiplier: float = 1.0
  layer_lr_decay: float = 1.0
  # Steps during which those pretrained weights stay fixed while the new layers (patch
  # embeddings, heads) learn to speak to them; 0: none.
  frozen_pretrained_steps: int = 0


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
  """How the training loop runs."""
  model_dir: str = ""
  train_steps: int = 50000
  batch_size: int = 32  # global, split across replicas
  strategy: str = "one_device"  # one of STRATEGIES
  tpu_address: str = ""
  input_mode: str = "auto"  # one of INPUT_MODES, see kaleido.training.distribute
  mixed_precision: str = "none"  # one of MIXED_PRECISION
  jit_compile: bool = False  # XLA-compile each replica's forward and backward pass
  seed: int = 0
  checkpoint_every: int = 1000
  max_checkpoints: int = 3
  summary_every: int = 20
  image_summary_every: int = 500


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
  """Held-out evaluation during training (data.eval_data)."""
  eval_every: int = 0  # steps between evaluations; 0: none
  eval_steps: int = 20  # batches per evaluation
  keep_best: str = ""  # a validation metric whose best checkpoint is kept; "": none


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
  """Everything one training run needs (module docstring)."""
  task: TaskConfig = TaskConfig()
  data: DataConfig = DataConfig()
  model: ModelConfig = KaleidoBertConfig()
  init: InitConfig = InitConfig()
  optimizer: OptimizerConfig = OptimizerConfig()
  training: TrainingConfig = TrainingConfig()
  evaluation: EvaluationConfig = EvaluationConfig()


def trims_text(config: ExperimentConfig) -> bool:
  """Whether the input pipelines cut each batch's text to its longest (DataConfig.trim_text)."""
  return config.data.trim_text and config.training.strategy != "tpu"


def uses_feature_cache(config: ExperimentConfig) -> bool:
  """Whether a Kaleido-BERT run reads cached patch features instead of pixels."""
  if not isinstance(config.model, KaleidoBertConfig):
    return False
  mode = config.data.patch_features
  return mode == "cached" or (mode == "auto" and not config.model.patch_cnn_trainable)


# ---------------------------------------------------------------------------------------------
# validation: the one place


def _check(condition: bool, message: str) -> None:
  if not condition:
    raise ConfigError(message)


def _validate_retrieval_negatives(finetune: FinetuneConfig, batch_size: int) -> None:
  _check(0.0 <= finetune.negative_same_subcategory <= 1.0,
         f"--negative_same_subcategory={finetune.negative_same_subcategory} is a share; pass a "
         "value from 0 (negatives of any other product) to 1 (same subcategory).")
  _one_of(finetune.itm_loss, ITM_LOSSES, "itm_loss")
  k = finetune.negatives_per_positive
  _check(0 <= k < batch_size, f"--negatives_per_positive={k} must be from 0 (negatives in the "
         f"input pipeline) to the global batch size minus one ({batch_size - 1}).")
  _check(k > 0 or (finetune.itm_loss == "binary" and not finetune.mined_negatives),
         "--itm_loss=listwise and --mined_negatives draw the negatives inside the training "
         "step; pass --negatives_per_positive=K (K >= 1) with them.")
  _check(0 <= finetune.subcategory_runs <= batch_size,
         f"--subcategory_runs={finetune.subcategory_runs} is a number of examples per run of one "
         f"subcategory; pass 0 (shuffled batches) to the batch size {batch_size}.")
  _check(finetune.margin_shortlist == 0 or (
      finetune.mined_negatives and k <= finetune.margin_shortlist < batch_size),
         f"--margin_shortlist={finetune.margin_shortlist} draws the mined negatives among each "
         f"query's shortlist: pass it with --mined_negatives, from --negatives_per_positive={k} "
         f"to the batch size minus one ({batch_size - 1}).")
  _check(finetune.negative_queue == 0 or (
      k > 0 and finetune.negative_queue % batch_size == 0),
         f"--negative_queue={finetune.negative_queue} keeps whole global batches of earlier "
         f"pairs to draw the step's negatives from: pass a multiple of the batch size "
         f"{batch_size} with --negatives_per_positive=K (K >= 1), or 0.")
  _check(not finetune.mined_negatives or finetune.itc_weight > 0,
         "--mined_negatives draws negatives by the ITC similarity, which needs the contrastive "
         "head; pass --itc_weight > 0 with it.")


def _validate_group_every(every: int, batch_size: int, replicas: int) -> None:
  per_replica = batch_size // max(replicas, 1)
  _check(every >= 1 and per_replica % every == 0,
         f"--group_every={every} must divide the batch of each replica ({per_replica}), so that "
         "every replica has the same queries whatever their number; pass 1, 2, 4, ...")


def _one_of(value: str, allowed: tuple[str, ...], flag: str) -> None:
  _check(value in allowed, f"--{flag}={value!r} is not one of {', '.join(allowed)}.")


def _validate_pretraining(pretraining: PretrainingConfig) -> None:
  unknown = [name for name in pretraining.enabled if name not in ALL_LOSSES]
  _check(not unknown and "amlm" in pretraining.enabled,
         f"--tasks={','.join(pretraining.enabled)} must include amlm and name only "
         f"{', '.join(ALL_LOSSES)}.")
  for name, weight in pretraining.weights:
    _check(name in ALL_LOSSES and weight >= 0,
           f"--loss_weights item {name}={weight} is not name=value with a name in "
           f"{', '.join(ALL_LOSSES)} and a value >= 0.")
  _one_of(pretraining.masking, MASKING_MODES, "masking")
  _check(not pretraining.itm_unmasked or pretraining.is_enabled("itm"),
         "--itm_unmasked needs itm in --tasks.")
  _one_of(pretraining.itm_loss, ITM_LOSSES, "itm_loss")
  _check(pretraining.itm_negatives_per_positive == 0 or pretraining.is_enabled("itm"),
         "--negatives_per_positive makes ITM's negatives; it needs itm in --tasks.")
  _check(pretraining.itm_negatives_per_positive > 0 or pretraining.itm_loss == "binary",
         "--itm_loss=listwise scores groups made in the training step; pass "
         "--negatives_per_positive=K (K >= 1) with it.")


def _validate_matching_first(pretraining: PretrainingConfig, train_steps: int) -> None:
  steps = pretraining.matching_first_steps
  _check(0 <= steps < train_steps,
         f"--matching_first_steps={steps} must be between 0 and --train_steps={train_steps}.")
  _check(not steps or any(pretraining.weight(name) > 0 for name in MATCHING_LOSSES),
         f"--matching_first_steps={steps} trains ITM (or ITC) alone first; it needs itm or itc in"
         " --tasks with a weight above 0.")


def _validate_kaleido_model(model: KaleidoBertConfig) -> None:
  _check(min(model.hidden_size, model.num_layers, model.num_heads,
             model.intermediate_size) >= 1, "The encoder sizes must all be at least 1.")
  _check(model.hidden_size % model.num_heads == 0,
         f"--hidden_size={model.hidden_size} must be divisible by --num_heads={model.num_heads}.")
  _one_of(model.hidden_act, HIDDEN_ACTS, "hidden_act")
  _one_of(model.pooling, POOLINGS, "pooling")
  _one_of(model.patch_cnn, CNNS, "patch_cnn")
  levels = model.kaleido_levels
  _check(bool(levels) and len(set(levels)) == len(levels) and set(levels) <= {1, 2, 3, 4, 5},
         f"--kaleido_levels={','.join(map(str, levels))} must name distinct levels of 1..5.")
  _check(0 <= model.fusion_layer < model.num_layers,
         f"--fusion_layer={model.fusion_layer} must be at least 0 and below --num_layers="
         f"{model.num_layers} (at least one block must see text and patches together).")
  _check(model.contrastive_dim >= 1 and 0 < model.contrastive_temperature <= 1,
         f"--contrastive_dim={model.contrastive_dim} must be at least 1 and "
         f"--contrastive_temperature={model.contrastive_temperature} in (0, 1].")


def _validate_levels(config: ExperimentConfig) -> None:
  """Refuses a pre-training task that reads a kaleido level the encoder does not see."""
  levels = config.model.kaleido_levels
  for name in config.task.pretraining.enabled:
    level = TASK_LEVELS.get(name)
    _check(level is None or level in levels,
           f"--tasks includes {name}, which reads level {level}, but --kaleido_levels="
           f"{','.join(map(str, levels))} leaves that level out; drop {name} from --tasks or "
           f"add level {level}.")


def _validate_captioner(model: CaptionerConfig) -> None:
  _one_of(model.cnn, CNNS, "cnn")
  stride = CAPTIONER_STRIDES[model.cnn]
  _check(model.image_size % stride == 0 and model.image_size >= 2 * stride,
         f"--image_size={model.image_size} does not suit the {model.cnn} CNN; use a "
         f"multiple of {stride} of at least {2 * stride}.")
  _check(min(model.feature_size, model.embedding_size, model.hidden_size, model.attention_size,
             model.vocab_size) >= 1 and model.max_length >= 3,
         f"Captioner sizes must be positive and max_length >= 3, got {model}.")
  _check(0.0 <= model.dropout < 1.0, f"--dropout={model.dropout} must be in [0, 1).")


def _validate_unet(model: UNetConfig) -> None:
  _check(model.depth >= 1 and model.base_filters >= 1,
         f"UNet depth and base_filters must be positive, got {model}.")
  _check(model.input_size % (2 ** model.depth) == 0,
         f"UNet input_size {model.input_size} must be divisible by 2**depth = {2 ** model.depth}.")


def _validate_optimizer(optimizer: OptimizerConfig, train_steps: int) -> None:
  _one_of(optimizer.name, OPTIMIZERS, "optimizer")
  _one_of(optimizer.schedule, SCHEDULES, "schedule")
  _check(optimizer.learning_rate > 0, f"--learning_rate={optimizer.learning_rate} must be > 0.")
  _check(0 <= optimizer.warmup_steps <= train_steps,
         f"--warmup_steps={optimizer.warmup_steps} must be between 0 and --train_steps="
         f"{train_steps} (the paper warms up for 5,000 steps).")
  _check(optimizer.weight_decay >= 0 and optimizer.clip_norm >= 0,
         "--weight_decay and --clip_norm must be >= 0.")
  _check(0 <= optimizer.frozen_pretrained_steps < train_steps,
         f"--frozen_pretrained_steps={optimizer.frozen_pretrained_steps} must be between 0 and "
         f"--train_steps={train_steps}.")
  _check(optimizer.pretrained_lr_multiplier > 0 and 0 < optimizer.layer_lr_decay <= 1,
         f"--pretrained_lr_multiplier={optimizer.pretrained_lr_multiplier} must be > 0 and "
         f"--layer_lr_decay={optimizer.layer_lr_decay} in (0, 1].")


def _validate_training(training: TrainingConfig) -> None:
  for name in ("train_steps", "batch_size", "checkpoint_every", "max_checkpoints",
               "summary_every", "image_summary_every"):
    value = getattr(training, name)
    _check(value >= 1, f"--{name}={value} must be at least 1.")
  _check(bool(training.model_dir), "--model_dir is required: where checkpoints and TensorBoard "
         "summaries go (a rerun resumes from it).")
  _check(not os.path.isfile(training.model_dir),
         f"--model_dir={training.model_dir!r} is a file; pass a folder (it is created if "
         "missing).")
  _one_of(training.strategy, STRATEGIES, "strategy")
  _one_of(training.input_mode, INPUT_MODES, "input_mode")
  _one_of(training.mixed_precision, MIXED_PRECISION, "mixed_precision")


def _validate_init(config: ExperimentConfig) -> None:
  init, task = config.init, config.task
  _check(not (init.bert_init and init.init_checkpoint),
         "--bert_init and --init_checkpoint both say where the encoder starts; pass one of them.")
  _check(not (init.init_checkpoint and not task.is_finetune),
         "--init_checkpoint is for fine-tuning; pass a --task other than pretrain, or drop it (a "
         "rerun resumes from --model_dir).")
  model = config.model
  if init.bert_reinit_layers:
    # The bound is the checkpoint's layer count, checked when its sizes are known
    # (kaleido.pretrained.bert_init.model_config_overrides).
    _check(init.bert_init and init.bert_reinit_layers > 0,
           f"--bert_reinit_layers={init.bert_reinit_layers} re-initialises the top layers of a "
           "--bert_init checkpoint, so it needs --bert_init and a count above 0.")
  _check(init.bert_init or not init.patch_norm_from_text,
         "--patch_norm_from_text copies the LayerNorm of a --bert_init checkpoint; pass "
         "--bert_init or drop it.")
  _check(init.bert_init or not init.patch_projection_from_words,
         "--patch_projection_from_words maps patches into the word embeddings of a --bert_init "
         "checkpoint; pass --bert_init or drop it.")
  if (isinstance(model, KaleidoBertConfig) and model.patch_cnn == "resnet50" and
      not model.patch_cnn_trainable and not init.patch_cnn_weights and not init.init_checkpoint):
    raise ConfigError(
        "--patch_cnn=resnet50 is frozen but has no --patch_cnn_weights, so its patch features "
        "would be random; pass the ImageNet weights file, or --patch_cnn_weights=random on "
        "purpose, or --patch_cnn=small.")


def _validate_evaluation(config: ExperimentConfig) -> None:
  evaluation = config.evaluation
  _check(evaluation.eval_every >= 0 and evaluation.eval_steps >= 1,
         "--eval_every must be >= 0 and --eval_steps >= 1.")
  _check(not evaluation.eval_every or bool(config.data.eval_data),
         "--eval_every needs --eval_data, a prepared held-out folder (or demo).")
  _check(not evaluation.keep_best or evaluation.eval_every > 0,
         "--keep_best needs --eval_every > 0: the best checkpoint is chosen on the evaluations.")


def _validate_replicas(training: TrainingConfig, replicas: int) -> None:
  _check(training.batch_size >= replicas and training.batch_size % replicas == 0,
         f"--batch_size={training.batch_size} (global) does not split evenly across {replicas} "
         f"replicas; use a multiple of {replicas}.")
  _check(not training.jit_compile or replicas == 1,
         f"--jit_compile runs on one replica only (the losses' cross-replica sum cannot sit "
         f"inside an XLA cluster), not {replicas}; drop it or use --strategy=one_device.")


def validate(config: ExperimentConfig, replicas: int = 1,
             before_data: bool = False) -> ExperimentConfig:
  """`config` when it can run on `replicas` replicas; otherwise a ConfigError naming the setting
  and the fix. `before_data`: the checks of what is read from the data (the label count) wait."""
  task = config.task
  _validate_training(config.training)  # first: the task checks below read the batch size
  _one_of(task.name, TASK_NAMES, "task")
  _check(config.model.kind == TASK_MODEL_KINDS[task.name],
         f"The task {task.name} needs a {TASK_MODEL_KINDS[task.name]} model, not "
         f"{config.model.kind}.")
  if task.name == PRETRAIN:
    _validate_pretraining(task.pretraining)
    _validate_levels(config)
    k = task.pretraining.itm_negatives_per_positive
    _check(0 <= k < config.training.batch_size,
           f"--negatives_per_positive={k} must be from 0 to the global batch size minus one "
           f"({config.training.batch_size - 1}).")
    _validate_group_every(task.pretraining.itm_group_every, config.training.batch_size, replicas)
    _validate_matching_first(task.pretraining, config.training.train_steps)
  if task.is_finetune:
    _one_of(task.finetune.caption_mode, CAPTION_MODES, "caption_mode")
    _one_of(task.finetune.retrieval_text, RETRIEVAL_TEXTS, "retrieval_text")
    _check(task.finetune.itc_weight >= 0 and (task.name == "retrieval" or
                                              not task.finetune.itc_weight),
           f"--itc_weight={task.finetune.itc_weight} must be >= 0 and is read by "
           "--task=retrieval only.")
    _validate_retrieval_negatives(task.finetune, config.training.batch_size)
    _validate_group_every(task.finetune.group_every, config.training.batch_size, replicas)
    if task.name in ("category", "subcategory") and not before_data:
      _check(task.finetune.num_classes >= 2,
             f"The {task.name} labels of --train_data are not the ids 0..N-1 of at least two "
             "classes; re-run data/prepare.py.")
  if task.name == FOREGROUND:
    _one_of(task.foreground.masks, FOREGROUND_MASKS, "masks")
  if isinstance(config.model, KaleidoBertConfig):
    _validate_kaleido_model(config.model)
    _one_of(config.data.patch_features, PATCH_FEATURES, "patch_features")
    _check(config.data.patch_features != "cached" or not config.model.patch_cnn_trainable,
           "--patch_features=cached reads features a frozen patch CNN computed once, but "
           "--patch_cnn_trainable trains it; use --patch_features=pixels (or auto) with a "
           "trainable patch CNN.")
  if isinstance(config.model, UNetConfig):
    _validate_unet(config.model)
  if isinstance(config.model, CaptionerConfig):
    _validate_captioner(config.model)
    captioner = task.captioner
    _check(captioner.attention_reg >= 0 and 0.0 <= captioner.word_dropout < 1.0,
           "--attention_reg must be >= 0 and --word_dropout in [0, 1).")
  _validate_optimizer(config.optimizer, config.training.train_steps)
  _validate_replicas(config.training, replicas)
  _validate_init(config)
  _validate_evaluation(config)
  return config


# ---------------------------------------------------------------------------------------------
# run_config.json


def _to_json(value: Any) -> Any:
  if dataclasses.is_dataclass(value):
    payload = {field.name: _to_json(getattr(value, field.name))
               for field in dataclasses.fields(value)}
    kind = getattr(type(value), "kind", None)
    return {"kind": kind, **payload} if kind else payload
  if isinstance(value, tuple):
    return [_to_json(item) for item in value]
  return value


def to_json(config: ExperimentConfig) -> dict[str, Any]:
  """The whole config as JSON-able data, with the format tag."""
  return {"format": FORMAT, **_to_json(config)}


def _from_json(cls: Any, payload: Any) -> Any:
  """Rebuilds dataclass `cls` (or a union of them, told apart by "kind") from JSON data."""
  if typing.get_origin(cls) in (typing.Union, types.UnionType):
    cls = MODEL_KINDS[payload["kind"]]
  if dataclasses.is_dataclass(cls):
    hints = typing.get_type_hints(cls)
    known = {field.name for field in dataclasses.fields(cls)}
    unknown = sorted(set(payload) - known - {"kind"})
    if unknown:
      raise TypeError(f"unknown {cls.__name__} fields {', '.join(unknown)}")
    return cls(**{name: _from_json(hints[name], value) for name, value in payload.items()
                  if name in known})
  if typing.get_origin(cls) is tuple and isinstance(payload, list):
    args = typing.get_args(cls)
    item = args[0] if len(args) == 2 and args[1] is Ellipsis else None
    return tuple(_from_json(item or args[i], value) for i, value in enumerate(payload))
  return payload


def from_json(payload: dict[str, Any], source: str = "the run config") -> ExperimentConfig:
  """The config of `to_json` data; a ConfigError when it is not one."""
  payload = dict(payload)
  payload_format = payload.pop("format", None)
  if payload_format == _FORMAT_BEFORE_PATCH_CNN:
    raise ConfigError(f"{source} was written before the patch CNN's rename ({payload_format}), "
                      "so the run's checkpoints use the old names; retrain the run, or use a "
                      "checkout of the code from before that rename.")
  if payload_format != FORMAT:
    raise ConfigError(f"{source} is not a {FORMAT} file; re-run train.py.")
  try:
    return _from_json(ExperimentConfig, payload)
  except (KeyError, TypeError, ValueError) as error:
    raise ConfigError(f"{source} does not match this version of the code ({error}); re-run "
                      "train.py.") from error


def model_dir_of(path: str) -> str:
  """A model_dir, or a checkpoint prefix inside its `checkpoints/` folder -> the model_dir."""
  if os.path.isdir(path):
    return path
  return os.path.dirname(os.path.dirname(os.path.abspath(path)))


def save(config: ExperimentConfig) -> str:
  """Writes `config` as MODEL_DIR/run_config.json atomically; returns its path."""
  from kaleido.utils import files  # pylint: disable=g-import-not-at-top
  os.makedirs(config.training.model_dir, exist_ok=True)
  path = os.path.join(config.training.model_dir, RUN_CONFIG_NAME)
  files.write_json(path, to_json(config))
  return path


def vocab_file_of(run: ExperimentConfig) -> str:
  """The vocabulary file `run` was trained with; a ConfigError naming it when it is gone or its
  bytes changed (the run's word embeddings are indexed by it, so only that file will do)."""
  path = run.data.vocab_file
  if not os.path.isfile(path):
    raise ConfigError(
        f"The vocabulary {path!r} that the run {run.training.model_dir!r} was trained with "
        f"(data.vocab_file of its {RUN_CONFIG_NAME}) is missing; put that file back (its SHA-256 "
        f"begins {run.data.vocab_hash[:12]}): no other vocabulary fits the run's word "
        "embeddings.")
  from kaleido.utils import files  # pylint: disable=g-import-not-at-top
  if run.data.vocab_hash and files.file_sha256(path) != run.data.vocab_hash:
    raise ConfigError(
        f"The vocabulary {path!r} has changed since the run {run.training.model_dir!r} was "
        f"trained with it (its SHA-256 no longer begins {run.data.vocab_hash[:12]}); put the "
        "original back: a changed vocabulary gives words the wrong embeddings.")
  return path


def load_pretraining_run(path: str, flag: str) -> ExperimentConfig:
  """The config of the pre-training run at `path` (given as --`flag`); a ConfigError for a run
  of another task."""
  run = load(path)
  _check(run.task.name == PRETRAIN, f"--{flag}={path!r} is a {run.task.name} run; pass a "
         "pre-training run.")
  return run


def load(path: str) -> ExperimentConfig:
  """The config of a model_dir (or of the model_dir holding checkpoint `path`)."""
  from kaleido.utils import files  # pylint: disable=g-import-not-at-top
  if not os.path.exists(path) and not os.path.isfile(path + ".index"):
    raise ConfigError(f"{path!r} does not exist; pass the --model_dir of a train.py run or one "
                      "of its checkpoints.")
  model_dir = model_dir_of(path)
  config_path = os.path.join(model_dir, RUN_CONFIG_NAME)
  if not os.path.isfile(config_path):
    raise ConfigError(f"{model_dir!r} has no {RUN_CONFIG_NAME}, so it is not a model_dir written "
                      "by train.py; pass the --model_dir of a training run.")
  payload = files.read_json(config_path, "restore it from a copy, or train into a new "
                            "--model_dir (the checkpoints alone do not say how the run was made)")
  return from_json(payload, repr(config_path))

