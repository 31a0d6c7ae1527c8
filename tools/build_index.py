"""`python tools/build_index.py`: the `kaleido-index` command (kaleido/commands/build_index.py,
whose docstring is this script's usage)."""

from kaleido.commands import build_index

__doc__ = build_index.__doc__  # absl prints the main module's docstring as the usage

if __name__ == "__main__":
  build_index.run()
