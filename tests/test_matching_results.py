"""tools/matching_results.py reads each figure from the evaluation files it names
(kaleido.evaluation.run_results)."""

import json

from kaleido.evaluation import run_results


def _write(folder, name, payload):
  (folder / f"{name}.json").write_text(json.dumps(payload), encoding="utf-8")


def _recalls(r1):
  return {"results": {"x": {"R@1": r1, "R@5": r1 + 10, "R@10": r1 + 20, "protocol": "p"}}}


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
  assert figures["pretrain_development_itm_accuracy"] == 0.86
  assert figures["commands"] == ["python train.py --a", "python evaluate.py --b"]
