r"""The demo pipeline's figures over seeds, one column per start: the mean, then each seed's value.

Reads what `tools/run_demo.sh` writes: the pre-training run runs/demo_pretrain<suffix> (ITM
accuracy of its last logged window, the mean over its last --summary_every steps) and the
evaluations runs/demo_eval<suffix>/{itr,tir,category,subcategory,caption}.json, where <suffix> is
the start's suffix followed by `_seed<N>` for every seed but 0, as run_demo.sh names them.

  python tools/seed_table.py --start=default: --start=minilm:_bert --seeds=0,1,2
"""

from __future__ import annotations

import json
import os

from absl import app
from absl import flags

from kaleido.evaluation import run_results
from kaleido.training.event_files import read_scalars

_STARTS = flags.DEFINE_multi_string(
    "start", ["default:"], "NAME:SUFFIX, the run folders' suffix of one start (run_demo.sh: '' "
    "for the default start, _bert for BERT_INIT=...); repeat for several columns.")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "The pipeline seeds to read.")
_RUNS_DIR = flags.DEFINE_string("runs_dir", "runs", "Where run_demo.sh's folders are.")

PRETRAINING_ITM = "pre-training ITM accuracy (%)"
ITM_TAG = "accuracy/itm_accuracy"
# (row, task, metric) of each evaluated figure; the task names its file, <task>.json.
EVALUATED = (
    ("ITR R@1", "itr", "R@1"), ("ITR R@5", "itr", "R@5"), ("ITR R@10", "itr", "R@10"),
    ("TIR R@1", "tir", "R@1"), ("TIR R@5", "tir", "R@5"), ("TIR R@10", "tir", "R@10"),
    ("category accuracy (%)", "category", "accuracy"),
    ("subcategory accuracy (%)", "subcategory", "accuracy"),
    ("caption BLEU-4", "caption", "BLEU-4"), ("caption CIDEr", "caption", "CIDEr"))
ROWS = (PRETRAINING_ITM, *(name for name, _, _ in EVALUATED))


def _pretraining_itm(model_dir: str) -> float | None:
  points = read_scalars(model_dir).get(ITM_TAG) if os.path.isdir(model_dir) else None
  return 100.0 * points[-1][1] if points else None


def _evaluated(eval_dir: str, task: str, metric: str) -> float | None:
  path = os.path.join(eval_dir, f"{task}.json")
  if not os.path.isfile(path):
    return None
  with open(path, encoding="utf-8") as f:
    return json.load(f)["results"].get(task, {}).get(metric)


def seed_values(runs_dir: str, suffix: str) -> dict[str, float | None]:
  """{row: value, None when not measured} of one pipeline run."""
  values = {PRETRAINING_ITM: _pretraining_itm(os.path.join(runs_dir, f"demo_pretrain{suffix}"))}
  eval_dir = os.path.join(runs_dir, f"demo_eval{suffix}")
  values.update({name: _evaluated(eval_dir, task, metric) for name, task, metric in EVALUATED})
  return values


def cell(values: list[float | None]) -> str:
  """'mean (v0 / v1 / ...)'; the mean of the measured seeds, their count when some are missing."""
  measured = [v for v in values if v is not None]
  if not measured:
    return "-"
  mean = f"{sum(measured) / len(measured):.2f}"
  if len(measured) < len(values):
    mean += f" (n={len(measured)})"
  return f"{mean} ({' / '.join('-' if v is None else f'{v:.2f}' for v in values)})"


def table(runs_dir: str, starts: list[tuple[str, str]], seeds: list[int]) -> list[str]:
  """Markdown rows: one per figure, one column per start."""
  per_start = [[seed_values(runs_dir, run_results.seed_suffix(suffix, seed)) for seed in seeds]
               for _, suffix in starts]
  seeds_text = " / ".join(str(seed) for seed in seeds)
  lines = [f"| seeds {seeds_text}: mean (each seed) | " + " | ".join(n for n, _ in starts) + " |",
           "|---" * (len(starts) + 1) + "|"]
  for row in ROWS:
    lines.append(f"| {row} | " + " | ".join(cell([run[row] for run in runs])
                                            for runs in per_start) + " |")
  return lines


def _parse_start(text: str) -> tuple[str, str]:
  name, sep, suffix = text.partition(":")
  if not sep or not name:
    raise app.UsageError(f"--start={text!r} is not NAME:SUFFIX (e.g. minilm:_bert).")
  return name, suffix


def main(argv):
  del argv
  starts = [_parse_start(text) for text in _STARTS.value]
  if not all(seed.isdigit() for seed in _SEEDS.value):
    raise app.UsageError(f"--seeds={','.join(_SEEDS.value)!r} is not a list of seeds (e.g. 0,1,2).")
  print("\n".join(table(_RUNS_DIR.value, starts, [int(seed) for seed in _SEEDS.value])))


if __name__ == "__main__":
  app.run(main)
