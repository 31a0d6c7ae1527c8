"""The --patch_features flag of the tools that embed a trained run's images (evaluate.py,
tools/build_index.py): the run's own setting unless overridden."""

from __future__ import annotations

from absl import flags

from kaleido import config as config_lib


def define_patch_features_flag() -> flags.FlagHolder:
  """Defines --patch_features in the calling tool ("" stands for the run's own setting)."""
  return flags.DEFINE_enum(
      "patch_features", "", ["", *config_lib.PATCH_FEATURES], "Where the patch features come "
      "from (default: the run's --patch_features): cached reads the folder's feature cache of "
      "the run's frozen patch CNN (built on first use, shared by every run and checkpoint with "
      "the same patch CNN weights), pixels embeds each image in memory; the same features "
      "either way.")
