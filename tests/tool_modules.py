"""Loads a tools/ script as a module for its tests, without keeping its absl flags: tools define
flags at import (--output_json in several), and tests of two tools share a worker process."""

from __future__ import annotations

import importlib.util
import pathlib
import types

from absl import flags

TOOLS = pathlib.Path(__file__).parents[1] / "tools"


def load(name: str) -> types.ModuleType:
  """tools/<name>.py as a module; the flags it defined are removed from absl's registry."""
  before = set(flags.FLAGS)
  spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  for flag in set(flags.FLAGS) - before:
    delattr(flags.FLAGS, flag)
  return module
