"""`python data/prepare.py`: the `kaleido-prepare` command (kaleido/commands/prepare.py,
whose docstring is this script's usage)."""

from kaleido.commands import prepare

__doc__ = prepare.__doc__  # absl prints the main module's docstring as the usage

if __name__ == "__main__":
  prepare.run()
