"""Evaluation results: the paper's sums, a table beside the paper, metrics JSON, TensorBoard.

`results` maps a task ("itr", "tir", "category", "subcategory", "caption") to its dict. In a
task's dict every float is a metric (printed, logged as eval/<task>/<metric>); ints are counts,
and strings and lists are details ("notes" holds sentences for the user).
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from kaleido.evaluation import paper_results
from kaleido.metrics import retrieval as retrieval_metrics
from kaleido.utils import files

TASK_ORDER = ("itr", "tir", "retrieval", "category", "subcategory", "classification", "caption")
_CAPTION_SUM = ("BLEU-4", "METEOR", "ROUGE-L", "CIDEr")


def add_sums(results: Mapping[str, dict]) -> dict[str, dict]:
  """Adds the paper's sums whose parts were all measured.

  SumR (Table 2) = the six Rank@K of ITR and TIR; SumCLS (Table 3) = (accuracy + macro-F) x 100 of
  category plus subcategory, with the all-class-ids macro-F; SumCAP (Table 3) = BLEU-4 + METEOR +
  ROUGE-L + CIDEr.
  """
  results = {task: dict(values) for task, values in results.items()}
  if "itr" in results and "tir" in results:
    results["retrieval"] = {
        "SumR": retrieval_metrics.sum_of_recalls(results["itr"], results["tir"])}
  if "category" in results and "subcategory" in results:
    results["classification"] = {"SumCLS": sum(
        results[t]["accuracy"] + 100.0 * results[t]["macro_f1_all"]
        for t in ("category", "subcategory"))}
  caption = results.get("caption", {})
  if all(name in caption for name in _CAPTION_SUM):
    caption["SumCAP"] = float(sum(caption[name] for name in _CAPTION_SUM))
  return results


def metric_values(results: Mapping[str, Mapping[str, Any]]) -> dict[tuple[str, str], float]:
  """{(task, metric): value} for every float metric, tasks in TASK_ORDER."""
  ordered = sorted(results, key=lambda t: TASK_ORDER.index(t) if t in TASK_ORDER else 99)
  return {(task, name): value for task in ordered for name, value in results[task].items()
          if isinstance(value, float)}


def notes(results: Mapping[str, Mapping[str, Any]]) -> list[str]:
  """The tasks' notes, each prefixed with its task."""
  return [f"{task}: {note}" for task, values in results.items()
          for note in values.get("notes", [])]


def _format(metric: str, value: float | None) -> str:
  if value is None:
    return "-"
  return f"{value:.3f}" if metric.startswith("macro_f1") else f"{value:.2f}"


def format_table(results: Mapping[str, Mapping[str, Any]],
                 paper: Mapping[str, Mapping[str, float]] = paper_results.KALEIDO_BERT) -> str:
  """The measured metrics beside the paper's, one row per metric, then the notes."""
  lines = [f"{'task':<15}{'metric':<18}{'measured':>10}{'paper':>10}"]
  for (task, metric), value in metric_values(results).items():
    reported = paper.get(task, {}).get(metric)
    lines.append(f"{task:<15}{metric:<18}{_format(metric, value):>10}"
                 f"{_format(metric, reported):>10}")
  lines.append("paper = Kaleido-BERT, CVPR 2021, Tables 2-3 (Fashion-Gen, sample-100).")
  return "\n".join(lines + [f"note: {note}" for note in notes(results)])


def write_json(path: str, results: Mapping[str, Mapping[str, Any]],
               settings: Mapping[str, Any]) -> None:
  """Writes {"results", "paper", "settings"} atomically."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  paper = {task: values for task, values in paper_results.KALEIDO_BERT.items()
           if task in results}
  files.write_json(path, {"results": results, "paper": paper, "settings": dict(settings)})


def write_summaries(summary_dir: str, results: Mapping[str, Mapping[str, Any]],
                    step: int) -> None:
  """Logs every metric as a TensorBoard scalar eval/<task>/<metric> at `step`."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  writer = tf.summary.create_file_writer(summary_dir)
  with writer.as_default():
    for (task, metric), value in metric_values(results).items():
      tf.summary.scalar(f"eval/{task}/{metric}", value, step=step)
  writer.close()
