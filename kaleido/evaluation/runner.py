"""An EvaluationRequest carried out: the checkpoint's model on the data (or a captions file
alone), each task's figures with the paper's beside them, and where they are written.

The model side is kaleido.evaluation.model (imported only when a checkpoint is evaluated, so a
captions file is scored without TensorFlow's start-up): `product_ids` / `subcategory_ids` of the
evaluation examples, `retrieval_text`, `retrieval_scorer(direction, rerank, fusion_weight)`,
`classify(task)`, `captions(beam_size)`, `supports(task)`, `step` and `run` (its config).
"""

from __future__ import annotations

import dataclasses
import os
import sys

from kaleido import config as config_lib
from kaleido import errors
from kaleido.evaluation import captioning
from kaleido.evaluation import classification
from kaleido.evaluation import report
from kaleido.evaluation import request as request_lib
from kaleido.evaluation import retrieval
from kaleido.evaluation import two_stage
from kaleido.metrics import captioning as caption_metrics
from kaleido.metrics import classification as classification_metrics


def _log(line: str) -> None:
  print(line, file=sys.stderr)


def eval_folder(request: request_lib.EvaluationRequest) -> str:
  """The prepared folder to evaluate on: --eval_data, or the demo's split (made on first use,
  with the checkpoint's vocabulary: a --bert_init run's, or the demo's own)."""
  if request.eval_data == request_lib.DEMO:
    from kaleido.demo import pipeline  # pylint: disable=g-import-not-at-top
    _log(f"Evaluating on the demo's {request.demo_split} split ({request.demo_dir}); pass "
         "--eval_data=FOLDER for data prepared by data/prepare.py.")
    config = pipeline.DemoConfig(work_dir=request.demo_dir,
                                 vocab_file=config_lib.load(request.checkpoint).data.vocab_file)
    return pipeline.ensure_demo_data(config, log=_log).split_dir(request.demo_split)
  if not os.path.isdir(request.eval_data):
    raise errors.KaleidoError(f"--eval_data={request.eval_data!r} is not a folder; pass one "
                              "prepared by data/prepare.py, or `demo`.")
  return request.eval_data


def _beside_output(request: request_lib.EvaluationRequest, suffix: str) -> str:
  """`<output_json without .json>.<suffix>`, or "" when there is no --output_json."""
  if not request.output_json:
    return ""
  return f"{os.path.splitext(request.output_json)[0]}.{suffix}"


def ranking(request: request_lib.EvaluationRequest, run: config_lib.ExperimentConfig
            ) -> tuple[int, float]:
  """(rerank, fusion weight): the request's, or their defaults for the protocol and the run."""
  two_stages = (request.protocol == "full" and run.task.name == "retrieval" and
                run.task.has_contrastive_head)
  default_rerank = two_stage.DEFAULT_RERANK if two_stages else two_stage.WHOLE_GALLERY
  rerank = request.rerank if request.rerank is not None else default_rerank
  default_weight = (two_stage.DEFAULT_FUSION_WEIGHT
                    if two_stages and request.rerank is None else 0.0)
  fusion_weight = request.fusion_weight if request.fusion_weight is not None else default_weight
  return rerank, fusion_weight


def _retrieval(request, model, direction: str) -> dict:
  rerank, fusion_weight = ranking(request, model.run)
  result = retrieval.evaluate_retrieval(
      model.retrieval_scorer(direction, rerank, fusion_weight), model.product_ids,
      model.subcategory_ids, direction, protocol=request.protocol,
      num_queries=request.num_queries, num_draws=request.num_draws, seed=request.seed,
      index_file=request.index_file or None)
  if rerank != two_stage.WHOLE_GALLERY:
    result["notes"].append(
        "ranked by the ITC embeddings alone (--rerank=0)" if not rerank else
        f"ranked in two stages: the ITC embeddings over every candidate, the ITM cross-encoder "
        f"re-ranking the best {rerank} (--rerank)")
  if fusion_weight:
    result["notes"].append(f"re-ranking score: ITM margin + {fusion_weight:g} x ITC "
                           "cosine (--fusion_weight)")
  text = model.retrieval_text
  result["retrieval_text"] = text
  result["notes"].append("texts are the product names (titles)" if text == "name" else
                         "texts are the prepared texts (descriptions unless --text_field said "
                         "otherwise)")
  return result


def _classification(request, model, task: str) -> dict:
  labels, predictions, class_names = model.classify(task)
  result, confusion = classification.evaluate_classification(labels, predictions, class_names)
  path = _beside_output(request, f"{task}_confusion.csv")
  if path:
    classification_metrics.write_confusion_matrix(path, confusion, class_names)
    result["confusion_matrix_file"] = path
  return result


def _captioning(request, model, task: str) -> dict:
  del task  # one captioning task
  return _caption_figures(request, *model.captions(request.beam_size))


def _caption_figures(request, predictions: dict, references: dict) -> dict:
  result = caption_metrics.caption_metrics(predictions, references)
  path = _beside_output(request, "captions.jsonl")
  if path and not request.predictions:
    captioning.write_predictions(path, predictions, references)
    result["captions_file"] = path
  return result


def _tasks(request, model) -> list[str]:
  """--task, or for --task=all every task the checkpoint was trained for."""
  if request.task != "all":
    return [request.task]
  tasks = [task for task in request_lib.TASKS if model.supports(task)]
  if not tasks:
    raise errors.KaleidoError(f"The checkpoint {request.checkpoint!r} was trained for none of "
                              f"the tasks {', '.join(request_lib.TASKS)}.")
  skipped = [task for task in request_lib.TASKS if task not in tasks]
  if skipped:
    print(f"--task=all: the checkpoint was not trained for {', '.join(skipped)}; evaluating "
          f"{', '.join(tasks)}.")
  return tasks


def evaluate(request: request_lib.EvaluationRequest) -> tuple[dict, int]:
  """{task: figures} with the paper's beside them, and the step to log them at."""
  if request.output_json:  # the captions and confusion matrices are written beside it
    os.makedirs(os.path.dirname(os.path.abspath(request.output_json)), exist_ok=True)
  if request.predictions:
    predictions, references = captioning.read_predictions(request.predictions)
    return report.add_sums({"caption": _caption_figures(request, predictions, references)}), 0
  from kaleido.evaluation import model as model_lib  # pylint: disable=g-import-not-at-top
  model = model_lib.load(request.checkpoint, eval_folder(request), request.batch_size,
                         request.retrieval_text or "", request.caption_cache,
                         request.mixed_precision, request.patch_features)
  runners = {"itr": _retrieval, "tir": _retrieval, "category": _classification,
             "subcategory": _classification, "caption": _captioning}
  results = {task: runners[task](request, model, task) for task in _tasks(request, model)}
  return report.add_sums(results), model.step


def write(request: request_lib.EvaluationRequest, results: dict, step: int) -> None:
  """The figures as a table, and into --output_json and --summary_dir when given."""
  print(report.format_table(results))
  if request.output_json:
    report.write_json(request.output_json, results, dataclasses.asdict(request))
    print(f"Wrote {request.output_json}")
  if request.summary_dir:
    report.write_summaries(request.summary_dir, results, step)
    print(f"Wrote TensorBoard scalars eval/<task>/<metric> to {request.summary_dir}")
