"""The alignment pair settings (`AlignConfig`) as absl flags, shared by the command-line tools
that align (data/add_alignments.py, data/prepare.py, tools/show_alignments.py and
bench/alignment_quality.py). Only those tools call this module; the library takes `AlignConfig`."""

from __future__ import annotations

from absl import flags

from kaleido.alignment import config as pair_config


def define_align_flags() -> None:
  """Defines --decoding, --beam_size, --mass_fraction, --max_region_area, --min_score and
  --max_patches_per_level with `AlignConfig`'s defaults."""
  defaults = pair_config.AlignConfig()
  flags.DEFINE_enum("decoding", defaults.decoding, list(pair_config.DECODINGS),
                    "Caption decoding of the alignment generator.")
  flags.DEFINE_integer("beam_size", defaults.beam_size, "Beams of --decoding=beam.")
  flags.DEFINE_float("mass_fraction", defaults.mass_fraction,
                     "Share of a word's attention its region holds.")
  flags.DEFINE_float("max_region_area", defaults.max_region_area,
                     "Words whose region covers more of the crop than this get no pairs.")
  flags.DEFINE_float("min_score", defaults.min_score,
                     "Least Dice overlap of a word's region and a patch for a pair.")
  flags.DEFINE_integer("max_patches_per_level", defaults.max_patches_per_level,
                       "Patches per word and level (those holding the most attention).")


def align_config(flag_values: flags.FlagValues = flags.FLAGS) -> pair_config.AlignConfig:
  """The `AlignConfig` of the flags `define_align_flags` defined (after parsing)."""
  return pair_config.AlignConfig(
      decoding=flag_values.decoding, beam_size=flag_values.beam_size,
      mass_fraction=flag_values.mass_fraction, max_region_area=flag_values.max_region_area,
      min_score=flag_values.min_score, max_patches_per_level=flag_values.max_patches_per_level)
