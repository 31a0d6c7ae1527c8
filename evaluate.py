r"""Evaluates Kaleido-BERT on the paper's downstream tasks (section 4.2, Tables 2-3).

  python evaluate.py --task=all --checkpoint=runs/finetune/checkpoints --eval_data=demo \
      --output_json=runs/eval/metrics.json --summary_dir=runs/eval/tensorboard
  python evaluate.py --task=caption --predictions=captions.jsonl   # any captioner, no model

Prints the measured metrics beside the paper's. With --output_json, the metrics JSON is written
there, and beside it the confusion matrices (<name>.category_confusion.csv, ...) and the generated
captions with their references (<name>.captions.jsonl, re-scorable with --predictions). Retrieval
protocols: kaleido/evaluation/sampling.py; --index_file keeps the draws to repeat a run exactly.

The model side is `kaleido.evaluation.model.load(checkpoint, eval_data, batch_size,
retrieval_text)`,
imported only when a checkpoint is evaluated. It returns an object with
  product_ids: (num_examples,) str and subcategory_ids: (num_examples,) int of the eval examples;
  retrieval_text: "name" | "description" (optional): the texts ITR/TIR rank (load's 4th argument
      overrides the run's own when not "");
  retrieval_scorer(direction: "itr" | "tir", rerank: int) -> scorer(query_indices (n,),
      candidate_indices (n, c)) -> (n, c) scores, higher = better match
      (kaleido/evaluation/retrieval.py; rerank as --rerank);
  classify(task: "category" | "subcategory") -> (labels (num_examples,) int, predictions
      (num_examples,) int, class_names [str]); a label < 0 (class unknown to training) is
      left out and counted;
  captions() -> ({id: generated caption}, {id: [reference captions]});
  supports(task) -> bool (optional): whether the checkpoint was trained for the task; --task=all
      evaluates only those (default: all tasks);
  step (optional): the checkpoint's training step, for the TensorBoard scalars (default 0).
"""

import importlib
import os
import sys

from absl import app
from absl import flags

from kaleido import errors
from kaleido.evaluation import captioning
from kaleido.evaluation import classification
from kaleido.evaluation import report
from kaleido.evaluation import retrieval
from kaleido.evaluation import sampling
from kaleido.evaluation import two_stage
from kaleido.feature_cache import flags as feature_cache_flags
from kaleido.metrics import captioning as caption_metrics
from kaleido.metrics import classification as classification_metrics
from kaleido.utils import cli

TASKS = ("itr", "tir", "category", "subcategory", "caption")
MODEL_MODULE = "kaleido.evaluation.model"

_TASK = flags.DEFINE_enum("task", None, [*TASKS, "all"], "What to evaluate.", required=True)
_CHECKPOINT = flags.DEFINE_string("checkpoint", "", "The fine-tuned checkpoint to evaluate.")
_EVAL_DATA = flags.DEFINE_string("eval_data", "demo",
                                 "A folder prepared by data/prepare.py, or `demo` (a split of "
                                 "the demo catalog, --demo_split).")
_DEMO_DIR = flags.DEFINE_string("demo_dir", "workdir/demo", "Where --eval_data=demo lives.")
_DEMO_SPLIT = flags.DEFINE_enum(
    "demo_split", "validation", ["validation", "development"], "--eval_data=demo: the split to "
    "report (validation) or the one to tune on (development); no product is in both.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 64, "Examples (or pairs) per model call.")
_MIXED_PRECISION = flags.DEFINE_enum(
    "mixed_precision", "none", ["none", "mixed_bfloat16"], "Compute dtype of the model "
    "(bfloat16 where the hardware has it; weights stay float32; rankings may differ where "
    "scores are within bfloat16's precision).")
_PATCH_FEATURES = feature_cache_flags.define_patch_features_flag()
_BEAM_SIZE = flags.DEFINE_integer("beam_size", 1, "Captioning: beam width (1: greedy).")
_CAPTION_CACHE = flags.DEFINE_bool(
    "caption_cache", True, "Captioning: decode with the key/value cache (--nocaption_cache "
    "re-runs the whole encoder for every token, as before the cache; same captions, slower).")
_PREDICTIONS = flags.DEFINE_string(
    "predictions", "", "Captioning only, no model: a JSON-lines file, one line per image "
    '{"id": ..., "caption": "...", "references": ["...", ...]}.')
_OUTPUT_JSON = flags.DEFINE_string("output_json", "",
                                   "Metrics JSON; confusion matrices and captions go beside it.")
_SUMMARY_DIR = flags.DEFINE_string("summary_dir", "",
                                   "TensorBoard folder for the eval/<task>/<metric> scalars.")
_PROTOCOL = flags.DEFINE_enum("protocol", "sample100", list(sampling.PROTOCOLS),
                              "Retrieval: 1 positive + 100 negatives of the same subcategory "
                              "(the paper's), or every query against the whole gallery.")
_RERANK = flags.DEFINE_integer(
    "rerank", None, "Retrieval: -1 ranks every candidate with the ITM cross-encoder; 0 with the "
    "independent ITC embeddings alone (a checkpoint trained with --itc_weight or itc); N > 0 "
    "re-ranks each query's best N by ITC with the cross-encoder (two-stage search, "
    "kaleido/evaluation/two_stage.py). Default: -1 in sample-100 (the paper's) and for a run "
    "without an ITC head; 20 in the full gallery (measured best, issue #33).")
_FUSION_WEIGHT = flags.DEFINE_float(
    "fusion_weight", None, "Retrieval: re-ranked candidates are ordered by ITM margin + this x "
    "ITC cosine (0: the margin alone, the paper's score); needs an ITC head. Default: 20 when "
    "--rerank is left to its full-gallery default, else 0.", lower_bound=0.0)
_NUM_QUERIES = flags.DEFINE_integer("num_queries", 1000,
                                    "Retrieval queries (products) per draw.")
_NUM_DRAWS = flags.DEFINE_integer("num_draws", 5, "Retrieval draws, averaged.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the retrieval draws.")
_RETRIEVAL_TEXT = flags.DEFINE_enum(
    "retrieval_text", None, ["name", "description"], "ITR/TIR: rank product names (titles, the "
    "paper's protocol) or the prepared texts; default: what the checkpoint was fine-tuned on "
    "(names for a pre-training checkpoint).")
_INDEX_FILE = flags.DEFINE_string(
    "index_file", "", "JSON of the sampled retrieval draws: read when it exists (the run "
    "repeats exactly), else written.")


def _check_flags() -> None:
  """Flag combinations that cannot work, reported before anything starts."""
  for name, value in (("num_queries", _NUM_QUERIES.value), ("num_draws", _NUM_DRAWS.value),
                      ("batch_size", _BATCH_SIZE.value), ("beam_size", _BEAM_SIZE.value)):
    if value < 1:
      raise errors.KaleidoError(f"--{name}={value} must be at least 1.")
  if _RERANK.value is not None and _RERANK.value < -1:
    raise errors.KaleidoError(f"--rerank={_RERANK.value} must be -1 (the cross-encoder alone), "
                              "0 (the first stage alone) or the number of candidates to re-rank.")
  if _FUSION_WEIGHT.value and _RERANK.value == 0:
    raise errors.KaleidoError("--fusion_weight weighs the ITC cosine in the re-ranking score, "
                              "and --rerank=0 re-ranks nothing; pass --rerank=N or -1.")
  if _PREDICTIONS.value:
    if _TASK.value != "caption" or _CHECKPOINT.value:
      raise errors.KaleidoError("--predictions scores a captions file without a model, so it "
                                "goes with --task=caption and no --checkpoint.")
  elif not _CHECKPOINT.value:
    raise errors.KaleidoError(f"--task={_TASK.value} needs --checkpoint (a fine-tuned model); "
                              "only --task=caption can do without one, given --predictions.")


def _eval_data() -> str:
  if _EVAL_DATA.value == "demo":
    from kaleido import config as config_lib
    from kaleido.demo import pipeline
    # The demo prepared with the checkpoint's vocabulary (e.g. a --bert_init run's; the demo's
    # own folders for its learned one).
    config = pipeline.DemoConfig(work_dir=_DEMO_DIR.value,
                                 vocab_file=config_lib.load(_CHECKPOINT.value).data.vocab_file)
    if not _EVAL_DATA.present:
      print(f"No --eval_data given: evaluating on the demo's {_DEMO_SPLIT.value} split "
            "(--demo_dir, --demo_split).", file=sys.stderr)
    return pipeline.ensure_demo_data(config, log=lambda line: print(line, file=sys.stderr)
                                     ).split_dir(_DEMO_SPLIT.value)
  if not os.path.isdir(_EVAL_DATA.value):
    raise errors.KaleidoError(f"--eval_data={_EVAL_DATA.value!r} is not a folder; pass one "
                              "prepared by data/prepare.py, or `demo`.")
  return _EVAL_DATA.value


def _load_model():
  """The fine-tuned model behind the interface in the module docstring."""
  try:
    evaluation_model = importlib.import_module(MODEL_MODULE)
  except ModuleNotFoundError as error:
    if error.name not in (MODEL_MODULE, MODEL_MODULE.rpartition(".")[0]):
      raise
    raise errors.KaleidoError(
        f"Evaluating a checkpoint needs {MODEL_MODULE}, which this version does not have yet "
        "(issue #5); only --task=caption --predictions=FILE.jsonl works without a model."
    ) from error
  return evaluation_model.load(_CHECKPOINT.value, _eval_data(), _BATCH_SIZE.value,
                               _RETRIEVAL_TEXT.value or "", _CAPTION_CACHE.value,
                               _MIXED_PRECISION.value, _PATCH_FEATURES.value)


def _beside_output(suffix: str) -> str:
  """`<output_json without .json>.<suffix>`, or "" when there is no --output_json."""
  if not _OUTPUT_JSON.value:
    return ""
  return f"{os.path.splitext(_OUTPUT_JSON.value)[0]}.{suffix}"


def _ranking(model) -> tuple[int, float]:
  """(rerank, fusion weight): the flags, or their defaults for the protocol and the run."""
  two_stages = (_PROTOCOL.value == "full" and model.run.task.name == "retrieval" and
                model.run.task.has_contrastive_head)
  default_rerank = two_stage.DEFAULT_RERANK if two_stages else two_stage.WHOLE_GALLERY
  rerank = _RERANK.value if _RERANK.value is not None else default_rerank
  default_weight = (two_stage.DEFAULT_FUSION_WEIGHT
                    if two_stages and _RERANK.value is None else 0.0)
  return rerank, _FUSION_WEIGHT.value if _FUSION_WEIGHT.value is not None else default_weight


def _retrieval(model, direction: str) -> dict:
  rerank, fusion_weight = _ranking(model)
  result = retrieval.evaluate_retrieval(
      model.retrieval_scorer(direction, rerank, fusion_weight), model.product_ids,
      model.subcategory_ids, direction, protocol=_PROTOCOL.value, num_queries=_NUM_QUERIES.value,
      num_draws=_NUM_DRAWS.value, seed=_SEED.value, index_file=_INDEX_FILE.value or None)
  if rerank != two_stage.WHOLE_GALLERY:
    result["notes"].append(
        "ranked by the ITC embeddings alone (--rerank=0)" if not rerank else
        f"ranked in two stages: the ITC embeddings over every candidate, the ITM cross-encoder "
        f"re-ranking the best {rerank} (--rerank)")
  if fusion_weight:
    result["notes"].append(f"re-ranking score: ITM margin + {fusion_weight:g} x ITC "
                           "cosine (--fusion_weight)")
  return result


def _classification(model, task: str) -> dict:
  labels, predictions, class_names = model.classify(task)
  result, confusion = classification.evaluate_classification(labels, predictions, class_names)
  path = _beside_output(f"{task}_confusion.csv")
  if path:
    classification_metrics.write_confusion_matrix(path, confusion, class_names)
    result["confusion_matrix_file"] = path
  return result


def _captioning(model, task: str) -> dict:
  del task  # one captioning task
  predictions, references = model.captions(_BEAM_SIZE.value)
  result = caption_metrics.caption_metrics(predictions, references)
  path = _beside_output("captions.jsonl")
  if path:
    captioning.write_predictions(path, predictions, references)
    result["captions_file"] = path
  return result


def _tasks(model) -> list[str]:
  """--task, or for --task=all every task the checkpoint was trained for."""
  if _TASK.value != "all":
    return [_TASK.value]
  supports = getattr(model, "supports", lambda task: True)
  tasks = [task for task in TASKS if supports(task)]
  if not tasks:
    raise errors.KaleidoError(f"The checkpoint {_CHECKPOINT.value!r} was trained for none of the "
                              f"tasks {', '.join(TASKS)}.")
  skipped = [task for task in TASKS if task not in tasks]
  if skipped:
    print(f"--task=all: the checkpoint was not trained for {', '.join(skipped)}; evaluating "
          f"{', '.join(tasks)}.")
  return tasks


def _evaluate_model() -> tuple[dict, int]:
  """Results of the tasks with the loaded model, and the step to log them at."""
  model = _load_model()
  runners = {"itr": _retrieval, "tir": _retrieval, "category": _classification,
             "subcategory": _classification, "caption": _captioning}
  results = {task: runners[task](model, task) for task in _tasks(model)}
  for task in ("itr", "tir"):
    text = getattr(model, "retrieval_text", "")
    if task in results and text:
      results[task]["retrieval_text"] = text
      results[task].setdefault("notes", []).append(
          "texts are the product names (titles)" if text == "name"
          else "texts are the prepared texts (descriptions unless --text_field said otherwise)")
  return results, int(getattr(model, "step", 0))


def _settings() -> dict:
  names = ("task", "checkpoint", "eval_data", "demo_split", "predictions", "protocol",
           "rerank", "fusion_weight", "num_queries", "num_draws", "seed", "index_file",
           "batch_size", "retrieval_text", "beam_size", "caption_cache", "mixed_precision",
           "patch_features")
  return {name: flags.FLAGS[name].value for name in names}


@cli.user_errors_as_messages
def main(argv):
  del argv
  _check_flags()
  if _OUTPUT_JSON.value:
    os.makedirs(os.path.dirname(os.path.abspath(_OUTPUT_JSON.value)), exist_ok=True)
  if _PREDICTIONS.value:
    predictions, references = captioning.read_predictions(_PREDICTIONS.value)
    results, step = {"caption": caption_metrics.caption_metrics(predictions, references)}, 0
  else:
    results, step = _evaluate_model()
  results = report.add_sums(results)
  print(report.format_table(results))
  if _OUTPUT_JSON.value:
    report.write_json(_OUTPUT_JSON.value, results, _settings())
    print(f"Wrote {_OUTPUT_JSON.value}")
  if _SUMMARY_DIR.value:
    report.write_summaries(_SUMMARY_DIR.value, results, step)
    print(f"Wrote TensorBoard scalars eval/<task>/<metric> to {_SUMMARY_DIR.value}")


if __name__ == "__main__":
  app.run(main)
