"""`python evaluate.py`: the `kaleido-evaluate` command (kaleido/commands/evaluate.py,
whose docstring is this script's usage)."""

from kaleido.commands import evaluate

__doc__ = evaluate.__doc__  # absl prints the main module's docstring as the usage

if __name__ == "__main__":
  evaluate.run()
