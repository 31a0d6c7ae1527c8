"""evaluate.py as a user runs it: --predictions, one-sentence errors, and the model path end to
end with a fake kaleido.evaluation.model of known answers."""

import csv
import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest

from kaleido.evaluation import captioning
from kaleido.metrics import captioning as caption_metrics

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EVALUATE = os.path.join(REPO_ROOT, "evaluate.py")
# Runs evaluate.py with `kaleido.evaluation.model` replaced by this file's `fake_load`. It runs
# in the repository root (see _run), so `tests` is importable.
_WITH_FAKE = f"""
import runpy, sys, types
name = "kaleido.evaluation.model"
from tests import test_evaluate_cli
sys.modules[name] = types.ModuleType(name)
sys.modules[name].load = test_evaluate_cli.fake_load
sys.argv[0] = {EVALUATE!r}
runpy.run_path({EVALUATE!r}, run_name="__main__")
"""
JAVA = caption_metrics.java_available()  # without it: no METEOR, and a note that says so

# Classification answers: accuracy 70%, macro-F1 0.4214 over 5 ids, 0.7024 over the 3 present
# (hand-computed in test_metrics_classification.py).
LABELS = [0, 0, 0, 1, 1, 2, 2, 2, 2, 0]
PREDICTIONS = [0, 0, 1, 1, 4, 2, 2, 0, 2, 0]
CLASS_NAMES = ["TOPS", "PANTS", "SHOES", "BAGS", "HATS"]
CAPTIONS = {"a": "red cotton t-shirt with short sleeves", "b": "black leather boots with a zip"}


class FakeEvaluationModel:
  """The evaluation_model interface: a perfect ITR scorer, a constant TIR scorer, every task."""
  step = 7
  retrieval_text = "name"
  run = types.SimpleNamespace(task=types.SimpleNamespace(name="retrieval",
                                                         has_contrastive_head=False))

  def supports(self, task):
    del task
    return True

  def __init__(self):
    self.product_ids = np.array([f"p{i // 2:03d}" for i in range(300)])  # 150 products
    self.subcategory_ids = np.array([(i // 2) % 3 for i in range(300)])

  def retrieval_scorer(self, direction, rerank, fusion_weight):
    assert (rerank, fusion_weight) == (-1, 0.0)  # evaluate.py's defaults: the cross-encoder alone
    if direction == "itr":
      return lambda q, c: (self.product_ids[c] == self.product_ids[q][:, None]).astype(float)
    return lambda q, c: np.zeros(c.shape)

  def classify(self, task):
    assert task in ("category", "subcategory")
    return np.array(LABELS), np.array(PREDICTIONS), CLASS_NAMES

  def captions(self, beam_size=1):
    assert beam_size == 1
    return dict(CAPTIONS), {key: [caption.capitalize() + "."] for key, caption in CAPTIONS.items()}


class FakeRetrievalModel(FakeEvaluationModel):
  """A checkpoint fine-tuned for retrieval only."""

  def supports(self, task):
    return task in ("itr", "tir")


class FakeTwoStageModel(FakeRetrievalModel):
  """A retrieval checkpoint with an ITC head: any ranking is accepted and reported."""
  run = types.SimpleNamespace(task=types.SimpleNamespace(name="retrieval",
                                                         has_contrastive_head=True))

  def retrieval_scorer(self, direction, rerank, fusion_weight):
    print(f"ranking: rerank {rerank}, fusion weight {fusion_weight:g}")
    return lambda q, c: (self.product_ids[c] == self.product_ids[q][:, None]).astype(float)


def fake_load(checkpoint, eval_data, batch_size, retrieval_text, caption_cache,
              mixed_precision, patch_features):
  assert caption_cache and mixed_precision == "none"
  assert patch_features == "", patch_features  # the run's own unless --patch_features
  assert batch_size == 16, batch_size
  assert retrieval_text == "", retrieval_text  # the run's own unless --retrieval_text
  assert os.path.isdir(eval_data), eval_data
  models = {"runs/fake/checkpoints": FakeEvaluationModel,
            "runs/fake_retrieval/checkpoints": FakeRetrievalModel,
            "runs/fake_itc/checkpoints": FakeTwoStageModel}
  return models[checkpoint]()


def _run(*args, fake=False):
  command = [sys.executable, "-c", _WITH_FAKE] if fake else [sys.executable, EVALUATE]
  return subprocess.run([*command, *args], capture_output=True, text=True, timeout=300,
                        check=False, cwd=REPO_ROOT)


def _error_lines(result):
  assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
  return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def test_predictions_file_end_to_end(tmp_path):
  path = tmp_path / "captions.jsonl"
  captioning.write_predictions(str(path), {"1": "a red cotton t-shirt with short sleeves",
                                           "2": "black leather ankle boots with a zip"},
                               {"1": ["A red cotton T-shirt with short sleeves."],
                                "2": ["Black leather ankle boots, with a zip!"]})
  output = tmp_path / "out" / "metrics.json"
  result = _run("--task=caption", f"--predictions={path}", f"--output_json={output}")
  assert result.returncode == 0, result.stderr
  assert "caption        BLEU-4                100.00      5.70" in result.stdout
  metrics = json.loads(output.read_text())["results"]["caption"]
  # Identical after tokenization (lower case, punctuation dropped), no n-gram shared
  # between the two captions: BLEU and ROUGE-L are 100, CIDEr-D 10 (x100), METEOR almost 100.
  assert metrics["BLEU-1"] == pytest.approx(100) and metrics["BLEU-4"] == pytest.approx(100)
  assert metrics["ROUGE-L"] == pytest.approx(100) and metrics["CIDEr"] == pytest.approx(1000)
  if JAVA:
    assert 95 < metrics["METEOR"] <= 100 and metrics["tokenizer"] == "ptb"
  else:
    assert "METEOR" not in metrics and f"note: caption: {caption_metrics.NO_JAVA_NOTE}" in (
        result.stdout)


def test_malformed_predictions_name_the_line(tmp_path):
  path = tmp_path / "captions.jsonl"
  path.write_text('{"id": 1, "caption": "x", "references": ["y"]}\n'
                  '{"id": 2, "caption": "x", "reference": ["y"]}\n')
  assert _error_lines(_run("--task=caption", f"--predictions={path}")) == [
      f"error: Line 2 of {str(path)!r} lacks references; each line must be a JSON object "
      '{"id": ..., "caption": "...", "references": ["...", ...]}.']


def test_bad_flags_give_one_sentence(tmp_path):
  result = _run("--task=retrieval", "--checkpoint=x")
  assert result.returncode == 1 and "Traceback" not in result.stderr
  assert "flag --task=retrieval: value should be one of" in result.stderr
  assert _error_lines(_run("--task=category", f"--predictions={tmp_path}/p.jsonl")) == [
      "error: --predictions scores a captions file without a model, so it goes with "
      "--task=caption and no --checkpoint."]
  assert _error_lines(_run("--task=itr")) == [
      "error: --task=itr needs --checkpoint (a fine-tuned model); only --task=caption can do "
      "without one, given --predictions."]


def test_model_path_end_to_end_with_a_fake_model(tmp_path):
  output = tmp_path / "eval" / "metrics.json"
  index_file = tmp_path / "draws.json"
  summary_dir = tmp_path / "tensorboard"
  flagfile = tmp_path / "eval.flags"
  flagfile.write_text(f"--eval_data={tmp_path}\n--batch_size=16\n--num_queries=50\n")
  result = _run("--task=all", "--checkpoint=runs/fake/checkpoints", f"--flagfile={flagfile}",
                "--num_draws=2", f"--index_file={index_file}", f"--output_json={output}",
                f"--summary_dir={summary_dir}", fake=True)
  assert result.returncode == 0, result.stderr
  assert "retrieval      SumR                  300.00    319.52" in result.stdout
  assert "ITR sample100 100/100 (100.0%)" in result.stderr  # progress over 2 x 50 queries
  payload = json.loads(output.read_text())
  results = payload["results"]
  assert {k: results["itr"][k] for k in ("R@1", "R@5", "R@10")} == {
      "R@1": 100.0, "R@5": 100.0, "R@10": 100.0}
  # The constant TIR scorer ranks every positive last (101st): ties count against it.
  assert {k: results["tir"][k] for k in ("R@1", "R@5", "R@10")} == {
      "R@1": 0.0, "R@5": 0.0, "R@10": 0.0}
  assert results["itr"]["num_queries"] == 50 and results["tir"]["num_draws"] == 2
  assert results["category"]["accuracy"] == pytest.approx(70.0)
  assert results["subcategory"]["macro_f1_all"] == pytest.approx(0.4214285714)
  assert results["subcategory"]["macro_f1_present"] == pytest.approx(0.7023809524)
  assert results["classification"]["SumCLS"] == pytest.approx(2 * (70 + 42.14285714))
  assert results["caption"]["BLEU-4"] == pytest.approx(100.0)
  assert payload["settings"]["num_queries"] == 50 and payload["paper"]["retrieval"] == {
      "SumR": 319.52}
  # Files beside the metrics: confusion matrices and the captions with their references.
  with open(tmp_path / "eval" / "metrics.category_confusion.csv", encoding="utf-8") as f:
    assert next(csv.reader(f)) == ["true \\ predicted", *CLASS_NAMES]
  predictions, references = captioning.read_predictions(
      str(tmp_path / "eval" / "metrics.captions.jsonl"))
  assert predictions == CAPTIONS and references["a"] == ["Red cotton t-shirt with short sleeves."]
  # ITR wrote the draws, TIR read the same ones.
  draws = json.loads(index_file.read_text())
  assert len(draws["draws"]) == 2 and len(draws["draws"][0]["queries"]) == 50
  assert results["tir"]["notes"][0].startswith(f"Draws read from {index_file}")
  events = b"".join(p.read_bytes() for p in summary_dir.iterdir())
  for tag in (b"eval/itr/R@1", b"eval/tir/R@10", b"eval/retrieval/SumR",
              b"eval/subcategory/macro_f1_all", b"eval/caption/CIDEr"):
    assert tag in events
  assert (b"eval/caption/METEOR" in events) == JAVA


def test_all_tasks_are_those_the_checkpoint_was_trained_for(tmp_path):
  output = tmp_path / "metrics.json"
  result = _run("--task=all", "--checkpoint=runs/fake_retrieval/checkpoints",
                f"--eval_data={tmp_path}", "--batch_size=16", "--num_queries=10", "--num_draws=1",
                f"--output_json={output}", fake=True)
  assert result.returncode == 0, result.stderr
  assert ("--task=all: the checkpoint was not trained for category, subcategory, caption; "
          "evaluating itr, tir.") in result.stdout
  assert sorted(json.loads(output.read_text())["results"]) == ["itr", "retrieval", "tir"]


def test_the_full_gallery_defaults_to_the_fused_top_20_and_sample100_to_the_cross_encoder(
    tmp_path):
  def ranking(*extra):
    result = _run("--task=itr", "--checkpoint=runs/fake_itc/checkpoints", f"--eval_data={tmp_path}",
                  "--batch_size=16", "--num_queries=10", "--num_draws=1", *extra, fake=True)
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if line.startswith("ranking:")][0]

  assert ranking("--protocol=full") == "ranking: rerank 20, fusion weight 20"
  assert ranking("--protocol=full", "--rerank=20") == "ranking: rerank 20, fusion weight 0"
  assert ranking("--protocol=sample100") == "ranking: rerank -1, fusion weight 0"
