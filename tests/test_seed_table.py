"""tools/seed_table.py averages each figure over the seeds' runs, as run_demo.sh names them."""

import json
import os

import tensorflow as tf

from tests import tool_modules


def _tool():
  return tool_modules.load("seed_table")


def _pretraining(model_dir, itm_accuracies):
  writer = tf.summary.create_file_writer(os.path.join(model_dir, "train"))
  with writer.as_default():
    for step, accuracy in zip((950, 1000), itm_accuracies):
      tf.summary.scalar("accuracy/itm_accuracy", accuracy, step=step)
  writer.flush()


def _evaluation(eval_dir, task, metrics):
  os.makedirs(eval_dir, exist_ok=True)
  with open(os.path.join(eval_dir, f"{task}.json"), "w", encoding="utf-8") as f:
    json.dump({"results": {task: metrics}, "paper": {}, "settings": {}}, f)


def test_means_over_seeds_and_missing_runs(tmp_path):
  runs = str(tmp_path)
  _pretraining(os.path.join(runs, "demo_pretrain_bert"), (0.50, 0.60))
  _pretraining(os.path.join(runs, "demo_pretrain_bert_seed1"), (0.55, 0.50))
  _evaluation(os.path.join(runs, "demo_eval_bert"), "itr", {"R@1": 4.0, "R@5": 20.0, "R@10": 40.0})
  _evaluation(os.path.join(runs, "demo_eval_bert_seed1"), "itr",
              {"R@1": 6.0, "R@5": 30.0, "R@10": 50.0})
  _evaluation(os.path.join(runs, "demo_eval_bert"), "caption", {"BLEU-4": 12.5, "CIDEr": 90.0})
  _pretraining(os.path.join(runs, "demo_pretrain"), (0.40, 0.70))  # another start: not read
  tool = _tool()
  rows = {line.split(" | ")[0].strip("| "): line.split(" | ")[1].rstrip(" |")
          for line in tool.table(runs, [("minilm", "_bert")], [0, 1])[2:]}
  assert rows["pre-training ITM accuracy (%)"] == "55.00 (60.00 / 50.00)"  # the last window's
  assert rows["ITR R@1"] == "5.00 (4.00 / 6.00)"
  assert rows["ITR R@10"] == "45.00 (40.00 / 50.00)"
  assert rows["caption CIDEr"] == "90.00 (n=1) (90.00 / -)"
  assert rows["TIR R@1"] == "-"
