"""The one configuration object of the model and its pre-training (flags -> KaleidoConfig).

Library code receives these dataclasses; only the command-line tools read flags.
"""

from __future__ import annotations

import dataclasses

from kaleido import errors

BACKBONES = ("resnet50", "small")
MASKING_MODES = ("agm", "random")
# Transformer and MLM-transform activation: exact erf GELU (Hugging Face's "gelu") or its tanh
# approximation (Google BERT's and Model Garden's "gelu").
HIDDEN_ACTS = ("gelu", "gelu_approximate")
# What the pooler (and so ITM, retrieval and classification) reads: the [CLS] state, as BERT, or
# the mean of the real text states, as sentence-transformer checkpoints were trained to be read.
POOLINGS = ("cls", "mean_text")
KALEIDO_TASKS = ("rr", "jps", "cp", "g2cm", "b2cm")
ALL_LOSSES = ("amlm", "itm") + KALEIDO_TASKS


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Sizes of Kaleido-BERT. The paper: L=12, H=768, A=12, ResNet-50 patch features."""
  vocab_size: int = 30522
  hidden_size: int = 768
  num_layers: int = 12
  num_heads: int = 12
  intermediate_size: int = 3072
  max_seq_length: int = 64  # text positions: [CLS] text [SEP] + padding
  num_patches: int = 55
  patch_size: int = 64
  backbone: str = "resnet50"  # "small": a few conv layers, for quick runs and tests
  backbone_trainable: bool = False  # frozen: inference-mode batch norm, no gradient
  backbone_weights: str = ""  # a Keras .h5 weights file of the backbone ("" = random init)
  feature_size: int = 2048  # patch feature size (ResNet-50 global pool)
  dropout_rate: float = 0.1
  attention_dropout_rate: float = 0.1
  initializer_range: float = 0.02
  hidden_act: str = "gelu_approximate"  # one of HIDDEN_ACTS
  pooling: str = "cls"  # one of POOLINGS

  def __post_init__(self):
    if self.hidden_act not in HIDDEN_ACTS:
      raise errors.KaleidoError(f"hidden_act {self.hidden_act!r} is not one of "
                                f"{', '.join(HIDDEN_ACTS)}.")
    if self.pooling not in POOLINGS:
      raise errors.KaleidoError(f"pooling {self.pooling!r} is not one of {', '.join(POOLINGS)}.")

  @property
  def sequence_length(self) -> int:
    return self.max_seq_length + self.num_patches


@dataclasses.dataclass(frozen=True)
class TaskConfig:
  """Which pre-training tasks run, their loss weights (paper Eq. 8: all 1) and masking."""
  enabled: tuple[str, ...] = ALL_LOSSES  # any subset containing "amlm"; Table 4 columns
  weights: tuple[tuple[str, float], ...] = tuple((name, 1.0) for name in ALL_LOSSES)
  masking: str = "agm"  # or "random"
  max_predictions: int = 10  # masked text tokens per example at most
  mask_fraction: float = 0.15
  num_cp: int = 1  # L3 patches camouflaged
  num_g2cm: int = 2  # L4 patches greyed
  num_b2cm: int = 3  # L5 patches blanked
  itm_negative_fraction: float = 0.5
  hard_negatives: bool = False  # negatives from the same subcategory when available

  def weight(self, name: str) -> float:
    """Loss weight of `name`; 0 when the task is disabled."""
    return dict(self.weights).get(name, 0.0) if name in self.enabled else 0.0

  def is_enabled(self, name: str) -> bool:
    return name in self.enabled


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """How pre-training runs. Paper: AdamW lr 2e-5, weight decay 1e-4, 5K warm-up, 8 GPUs."""
  model_dir: str
  train_data: str  # a folder prepared by data/prepare.py
  train_steps: int = 1000
  batch_size: int = 32  # global, split across replicas
  strategy: str = "one_device"
  tpu_address: str = ""
  input_mode: str = "auto"  # see kaleido.training.distribute
  learning_rate: float = 2e-5
  warmup_steps: int = 5000
  weight_decay: float = 1e-4
  # Learning rate of the text side and encoder (what a BERT checkpoint supplies) relative to
  # learning_rate, and its decay per encoder layer from the top down (1: no decay).
  pretrained_lr_multiplier: float = 1.0
  layer_lr_decay: float = 1.0
  clip_norm: float = 1.0
  mixed_precision: str = "none"  # or mixed_bfloat16, mixed_float16
  jit_compile: bool = False  # XLA-compile each replica's forward and backward pass
  seed: int = 0
  checkpoint_every: int = 1000
  max_checkpoints: int = 3
  summary_every: int = 20
  image_summary_every: int = 500
  bert_init: str = ""  # a BERT checkpoint the text side and encoder start from ("" = random)


FINETUNE_TASKS = ("retrieval", "category", "subcategory", "caption")
CAPTION_MODES = ("autoregressive", "one_shot")
# The text side of retrieval: the product name (title, the paper's section 4.2) or the text the
# data was prepared with (data/prepare.py --text_field, the description by default).
RETRIEVAL_TEXTS = ("name", "description")


@dataclasses.dataclass(frozen=True)
class FinetuneConfig:
  """A downstream task (paper section 4.2) and where its weights start."""
  task: str  # one of FINETUNE_TASKS
  init_checkpoint: str = ""  # a pre-training model_dir or checkpoint; "" = from scratch
  num_classes: int = 0  # category / subcategory: size of the label map
  caption_mode: str = "autoregressive"  # or "one_shot" (the paper's: all positions [MASK])
  classifier_dropout: float = 0.1
  negative_fraction: float = 0.5  # retrieval: share of pairs given a same-subcategory negative
  retrieval_text: str = "name"  # retrieval: one of RETRIEVAL_TEXTS

  @property
  def name_as_text(self) -> bool:
    """Whether this task reads the product names as its text."""
    return self.task == "retrieval" and self.retrieval_text == "name"


@dataclasses.dataclass(frozen=True)
class KaleidoConfig:
  """Everything a run needs: pre-training when `finetune` is None, else that downstream task."""
  model: ModelConfig
  task: TaskConfig
  train: TrainConfig
  finetune: FinetuneConfig | None = None

  @property
  def task_name(self) -> str:
    return self.finetune.task if self.finetune else "pretrain"
