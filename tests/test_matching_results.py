"""tools/matching_results.py and tools/pretrained_results.py read each figure from the evaluation
files it names (kaleido.evaluation.run_results); tools/pretraining_table.py reads the ITM
objective from the run's config and the scores from its pretraining_itm.json; tools/
pretraining_itm.py scores the run's own held-out folder."""

import dataclasses
import json

import pytest

from kaleido import config as config_lib
from kaleido import errors
from kaleido.evaluation import run_results
from kaleido.records import manifest as manifest_lib
from tests import catalogs
from tests import tool_modules


def _write(folder, name, payload):
  (folder / f"{name}.json").write_text(json.dumps(payload), encoding="utf-8")


def _recalls(r1):
  return {"results": {"x": {"R@1": r1, "R@5": r1 + 10, "R@10": r1 + 20, "protocol": "p"}}}


def _finished_pipeline(folder, r1=50.0, cider=80.5):
  folder.mkdir(parents=True, exist_ok=True)
  _write(folder, "itr", _recalls(r1))
  _write(folder, "tir", _recalls(r1 + 2))
  _write(folder, "caption", {"results": {"caption": {"CIDEr": cider, "BLEU-4": 11.0}}})
  _write(folder, "subcategory", {"results": {"subcategory": {"accuracy": r1 + 40}}})
  _write(folder, "pretraining_itm", {"values": {"itm_accuracy": r1 / 100, "total": 4.0}})
  (folder / "commands.txt").write_text("python train.py --a\n", encoding="utf-8")


def test_pretrained_results_hold_each_finished_starts_files_and_means(tmp_path):
  pretrained_results = tool_modules.load("pretrained_results")
  for seed, (r1, cider) in enumerate(((50.0, 80.0), (60.0, 90.0))):
    _finished_pipeline(tmp_path / ("demo_eval_bert_paper" + (f"_seed{seed}" if seed else "")),
                       r1, cider)
  (tmp_path / "demo_eval_bert_paper_seed2").mkdir()  # a pipeline still under way
  assert run_results.finished_seeds(str(tmp_path), "minilm", "_bert_paper", [0, 1, 2]) == (
      [0, 1], f"minilm: seed 2 has no finished pipeline under {str(tmp_path)!r}; left out.")
  assert run_results.finished_seeds(str(tmp_path), "minilm", "_bert_paper", [0, 3, 4])[1] == (
      f"minilm: seeds 3, 4 have no finished pipeline under {str(tmp_path)!r}; left out.")
  with pytest.raises(errors.KaleidoError, match="No random pipeline"):
    run_results.finished_seeds(str(tmp_path), "random", "_paper", [0, 1, 2])
  runs = [pretrained_results.run_entry("minilm", seed, run_results.eval_folder(
      str(tmp_path), "_bert_paper", seed)) for seed in (0, 1)]
  assert runs[1] == {"start": "minilm", "seed": 1, "commands": ["python train.py --a"],
                     "pretrain_development_itm_accuracy": 0.6, "itr_R@1": 60.0,
                     "tir_R@1": 62.0, "caption_cider": 90.0, "subcategory_accuracy": 100.0}
  assert pretrained_results.means(runs, "minilm") == {
      "pretrain_development_itm_accuracy": 0.55, "itr_R@1": 55.0, "tir_R@1": 57.0,
      "caption_cider": 85.0, "subcategory_accuracy": 95.0}


def test_figures_come_from_the_runs_files(tmp_path):
  _write(tmp_path, "itr", _recalls(50.0))
  _write(tmp_path, "tir", _recalls(52.0))
  _write(tmp_path, "full_itc_itr", _recalls(40.0))
  _write(tmp_path, "full_itc_tir", _recalls(41.0))
  _write(tmp_path, "caption", {"results": {"caption": {"CIDEr": 80.5, "BLEU-4": 11.0}}})
  _write(tmp_path, "category", {"results": {"category": {"accuracy": 99.1}}})
  _write(tmp_path, "pretraining_itm", {"values": {"itm_accuracy": 0.86, "total": 4.0}})
  (tmp_path / "commands.txt").write_text("python train.py --a\n\npython evaluate.py --b\n",
                                         encoding="utf-8")
  figures = run_results.run_figures(str(tmp_path))
  assert figures["sample100"] == {"itr": {"R@1": 50.0, "R@5": 60.0, "R@10": 70.0},
                                  "tir": {"R@1": 52.0, "R@5": 62.0, "R@10": 72.0}}
  assert figures["full"] == {"itc": {"itr": {"R@1": 40.0, "R@5": 50.0, "R@10": 60.0},
                                     "tir": {"R@1": 41.0, "R@5": 51.0, "R@10": 61.0}}}
  assert figures["caption_cider"] == 80.5 and figures["category_accuracy"] == 99.1
  assert figures["subcategory_accuracy"] is None  # its file is absent
  assert figures["pretrain_development_itm_accuracy"] == 0.86
  assert figures["commands"] == ["python train.py --a", "python evaluate.py --b"]


def test_pretraining_itm_scores_the_runs_own_held_out_folder_and_refuses_another_vocabulary(
    tmp_path):
  pretraining_itm = tool_modules.load("pretraining_itm")
  data = catalogs.prepared_demo(str(tmp_path / "data"), 6, seed=2)
  manifest = manifest_lib.load(data)
  run = config_lib.ExperimentConfig(
      data=config_lib.DataConfig(train_data=data, eval_data=data, vocab_file=manifest.vocab_file,
                                 vocab_hash=manifest.vocab_hash),
      training=config_lib.TrainingConfig(model_dir=str(tmp_path / "run")))
  assert pretraining_itm.held_out_folder(run, "") == data
  other = dataclasses.replace(run, data=dataclasses.replace(run.data, vocab_hash="0" * 64))
  with pytest.raises(errors.KaleidoError, match="prepared with the vocabulary"):
    pretraining_itm.held_out_folder(other, data)
  unevaluated = dataclasses.replace(run, data=dataclasses.replace(run.data, eval_data=""))
  with pytest.raises(errors.KaleidoError, match="trained without --eval_data"):
    pretraining_itm.held_out_folder(unevaluated, "")


def test_the_pretraining_table_reads_the_objective_and_the_scores(tmp_path):
  pretraining_table = tool_modules.load("pretraining_table")
  run_dir = tmp_path / "run"
  config_lib.save(config_lib.ExperimentConfig(
      task=config_lib.TaskConfig(pretraining=config_lib.PretrainingConfig(
          itm_negatives_per_positive=3, itm_loss="listwise",
          weights=(("amlm", 1.0), ("itm", 3.0)))),
      training=config_lib.TrainingConfig(model_dir=str(run_dir), train_steps=700)))
  _write(run_dir, "pretraining_itm", {"run": "r", "eval_data": "dev", "batches": 10,
                                      "values": {"itm_accuracy": 0.87, "mlm_accuracy": 0.4}})
  entry = pretraining_table.row(str(run_dir))
  assert (entry["negatives_per_positive"], entry["itm_loss"], entry["itm_weight"],
          entry["train_steps"], entry["itm_accuracy"]) == (3, "listwise", 3.0, 700, 0.87)
  assert pretraining_table._objective(entry) == "groups K = 3, listwise, ITM weight 3"  # pylint: disable=protected-access
