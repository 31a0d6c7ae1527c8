"""What evaluate.py is asked to do: one EvaluationRequest, its flags derived from it
(kaleido.config_flags: one default per setting), checked before any work starts."""

from __future__ import annotations

import dataclasses

from kaleido import config as config_lib
from kaleido import config_flags
from kaleido import errors
from kaleido.evaluation import sampling

TASKS = ("itr", "tir", "category", "subcategory", "caption")
DEMO = "demo"
DEMO_SPLITS = ("validation", "development")


@dataclasses.dataclass(frozen=True)
class EvaluationRequest:
  """The tasks, the checkpoint and data, the protocol and where the figures go."""
  task: str = ""  # one of TASKS, or "all"
  checkpoint: str = ""
  eval_data: str = DEMO
  demo_dir: str = "workdir/demo"
  demo_split: str = "validation"
  batch_size: int = 64
  mixed_precision: str = "none"
  patch_features: str = ""  # "": the run's own setting
  beam_size: int = 1
  caption_cache: bool = True
  predictions: str = ""
  output_json: str = ""
  summary_dir: str = ""
  protocol: str = "sample100"
  rerank: int | None = None  # None: the protocol's and the run's default (evaluate.ranking)
  fusion_weight: float | None = None
  num_queries: int = 1000
  num_draws: int = 5
  seed: int = 0
  retrieval_text: str | None = None  # None: the run's own
  index_file: str = ""


_S = config_flags.Setting
SETTINGS = (
    _S("task", ("task",), "What to evaluate.", choices=(*TASKS, "all"), required=True),
    _S("checkpoint", ("checkpoint",), "The fine-tuned checkpoint to evaluate."),
    _S("eval_data", ("eval_data",), "A folder prepared by data/prepare.py, or `demo` (a split "
       "of the demo catalog, --demo_split)."),
    _S("demo_dir", ("demo_dir",), "Where --eval_data=demo lives."),
    _S("demo_split", ("demo_split",), "--eval_data=demo: the split to report (validation) or "
       "the one to tune on (development); no product is in both.", choices=DEMO_SPLITS),
    _S("batch_size", ("batch_size",), "Examples (or pairs) per model call."),
    _S("mixed_precision", ("mixed_precision",), "Compute dtype of the model (bfloat16 where the "
       "hardware has it; weights stay float32; rankings may differ where scores are within "
       "bfloat16's precision).", choices=("none", "mixed_bfloat16")),
    _S("patch_features", ("patch_features",), "Where the patch features come from (default: "
       "the run's --patch_features): cached reads the folder's feature cache of the run's "
       "frozen patch CNN (built on first use, shared by every run and checkpoint with the same "
       "patch CNN weights), pixels embeds each image in memory; the same features either way.",
       choices=("", *config_lib.PATCH_FEATURES)),
    _S("beam_size", ("beam_size",), "Captioning: beam width (1: greedy)."),
    _S("caption_cache", ("caption_cache",), "Captioning: decode with the key/value cache "
       "(--nocaption_cache re-runs the whole encoder for every token, as before the cache; "
       "same captions, slower)."),
    _S("predictions", ("predictions",), "Captioning only, no model: a JSON-lines file, one "
       'line per image {"id": ..., "caption": "...", "references": ["...", ...]}.'),
    _S("output_json", ("output_json",), "Metrics JSON; confusion matrices and captions go "
       "beside it."),
    _S("summary_dir", ("summary_dir",), "TensorBoard folder for the eval/<task>/<metric> "
       "scalars."),
    _S("protocol", ("protocol",), "Retrieval: 1 positive + 100 negatives of the same "
       "subcategory (the paper's), or every query against the whole gallery.",
       choices=sampling.PROTOCOLS),
    _S("rerank", ("rerank",), "Retrieval: -1 ranks every candidate with the ITM "
       "cross-encoder; 0 with the independent ITC embeddings alone (a checkpoint trained with "
       "--itc_weight or itc); N > 0 re-ranks each query's best N by ITC with the cross-encoder "
       "(two-stage search, kaleido/evaluation/two_stage.py). Default: -1 in sample-100 (the "
       "paper's) and for a run without an ITC head; 20 in the full gallery (measured best, "
       "issue #33)."),
    _S("fusion_weight", ("fusion_weight",), "Retrieval: re-ranked candidates are ordered by ITM "
       "margin + this x ITC cosine (0: the margin alone, the paper's score); needs an ITC head. "
       "Default: 20 when --rerank is left to its full-gallery default, else 0."),
    _S("num_queries", ("num_queries",), "Retrieval queries (products) per draw."),
    _S("num_draws", ("num_draws",), "Retrieval draws, averaged."),
    _S("seed", ("seed",), "Seed of the retrieval draws."),
    _S("retrieval_text", ("retrieval_text",), "ITR/TIR: rank product names (titles, the "
       "paper's protocol) or the prepared texts; default: what the checkpoint was fine-tuned on "
       "(names for a pre-training checkpoint).", choices=config_lib.RETRIEVAL_TEXTS),
    _S("index_file", ("index_file",), "JSON of the sampled retrieval draws: read when it "
       "exists (the run repeats exactly), else written."),
)


def validate(request: EvaluationRequest) -> EvaluationRequest:
  """`request` when it can run; otherwise a KaleidoError naming the flags and the fix."""
  for name in ("num_queries", "num_draws", "batch_size", "beam_size"):
    if getattr(request, name) < 1:
      raise errors.KaleidoError(f"--{name}={getattr(request, name)} must be at least 1.")
  if request.rerank is not None and request.rerank < -1:
    raise errors.KaleidoError(f"--rerank={request.rerank} must be -1 (the cross-encoder alone), "
                              "0 (the first stage alone) or the number of candidates to re-rank.")
  if request.fusion_weight is not None and request.fusion_weight < 0:
    raise errors.KaleidoError(f"--fusion_weight={request.fusion_weight} must be >= 0.")
  if request.fusion_weight and request.rerank == 0:
    raise errors.KaleidoError("--fusion_weight weighs the ITC cosine in the re-ranking score, "
                              "and --rerank=0 re-ranks nothing; pass --rerank=N or -1.")
  if request.predictions:
    if request.task != "caption" or request.checkpoint:
      raise errors.KaleidoError("--predictions scores a captions file without a model, so it "
                                "goes with --task=caption and no --checkpoint.")
  elif not request.checkpoint:
    raise errors.KaleidoError(f"--task={request.task} needs --checkpoint (a fine-tuned model); "
                              "only --task=caption can do without one, given --predictions.")
  return request


def define_flags() -> None:
  """Defines evaluate.py's flags."""
  config_flags.define(SETTINGS, EvaluationRequest())


def from_flags() -> EvaluationRequest:
  """The validated request evaluate.py's parsed flags describe."""
  return validate(config_flags.parse(SETTINGS, EvaluationRequest()))
