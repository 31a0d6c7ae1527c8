"""`python train.py`: the `kaleido-train` command (kaleido/commands/train.py,
whose docstring is this script's usage)."""

from kaleido.commands import train

__doc__ = train.__doc__  # absl prints the main module's docstring as the usage

if __name__ == "__main__":
  train.run()
