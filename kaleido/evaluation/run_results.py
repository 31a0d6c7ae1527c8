"""The figures of one demo pipeline's evaluation folder (tools/run_demo.sh's
runs/demo_eval<suffix>/), read from the files evaluate.py and tools/pretraining_itm.py wrote."""

from __future__ import annotations

import os

from kaleido import errors
from kaleido.utils import files

RECALLS = ("R@1", "R@5", "R@10")
FULL = {"itc": "full_itc", "rerank20_margin": "full_rerank20", "rerank20_fused": "full_fused20"}


def seed_suffix(suffix: str, seed: int) -> str:
  """tools/run_demo.sh's folder suffix of a variant (its own suffix) and seed: `_seed<N>` follows
  for every seed but 0."""
  return suffix + (f"_seed{seed}" if seed else "")


def eval_folder(runs_dir: str, suffix: str, seed: int) -> str:
  """tools/run_demo.sh's evaluation folder of a variant (its folder suffix) and seed."""
  return os.path.join(runs_dir, f"demo_eval{seed_suffix(suffix, seed)}")


def finished_seeds(runs_dir: str, name: str, suffix: str,
                   seeds: list[int]) -> tuple[list[int], str]:
  """The seeds of a variant (`name`, its folder suffix) whose pipeline finished (its folder holds
  pretraining_itm.json, tools/run_demo.sh's last file), and a note naming the others ("" when
  none is missing); a KaleidoError when none finished."""
  finished = [seed for seed in seeds if os.path.isfile(
      os.path.join(eval_folder(runs_dir, suffix, seed), "pretraining_itm.json"))]
  if not finished:
    raise errors.KaleidoError(f"No {name} pipeline (folders demo_eval{suffix}*) finished "
                              f"under {runs_dir!r} for seeds {seeds}; run tools/run_demo.sh.")
  missing = [str(seed) for seed in seeds if seed not in finished]
  seeds_have = (f"seed {missing[0]} has" if len(missing) == 1
                else f"seeds {', '.join(missing)} have")
  note = (f"{name}: {seeds_have} no finished pipeline under {runs_dir!r}; left out."
          if missing else "")
  return finished, note


def result(folder: str, name: str) -> dict | None:
  """The one result of `folder`/`name`.json, None when the file is absent."""
  path = os.path.join(folder, f"{name}.json")
  if not os.path.isfile(path):
    return None
  (figures,) = files.read_json(path, "rerun the evaluate.py command of its commands.txt")[
      "results"].values()
  return figures


def _directions(folder: str, prefix: str) -> dict | None:
  itr, tir = result(folder, f"{prefix}itr"), result(folder, f"{prefix}tir")
  if itr is None or tir is None:
    return None
  return {direction: {key: figures[key] for key in RECALLS}
          for direction, figures in (("itr", itr), ("tir", tir))}


def run_figures(folder: str) -> dict:
  """{commands, pretrain_development_itm_accuracy, sample100, full, caption_cider,
  category_accuracy, subcategory_accuracy} of one pipeline's evaluation folder (Rank@K in
  percent as evaluate.py writes them; a figure whose file is absent is left out or None)."""
  pretraining = files.read_json(os.path.join(folder, "pretraining_itm.json"),
                                "finish the pipeline with tools/run_demo.sh (its last step)")
  commands_path = os.path.join(folder, "commands.txt")
  if not os.path.isfile(commands_path):
    raise files.DamagedFileError(f"{commands_path!r} is missing: {folder!r} is not a finished "
                                 "tools/run_demo.sh folder; run it.")
  with open(commands_path, encoding="utf-8") as f:
    commands = [line.strip() for line in f if line.strip()]
  full = {name: _directions(folder, f"{prefix}_") for name, prefix in FULL.items()}
  caption = result(folder, "caption")
  category, subcategory = result(folder, "category"), result(folder, "subcategory")
  return {
      "commands": commands,
      "pretrain_development_itm_accuracy": pretraining["values"]["itm_accuracy"],
      "sample100": _directions(folder, ""),
      "full": {name: value for name, value in full.items() if value is not None},
      "caption_cider": caption["CIDEr"] if caption else None,
      "category_accuracy": category["accuracy"] if category else None,
      "subcategory_accuracy": subcategory["accuracy"] if subcategory else None,
  }
