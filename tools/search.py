"""`python tools/search.py`: the `kaleido-search` command (kaleido/commands/search.py,
whose docstring is this script's usage)."""

from kaleido.commands import search

__doc__ = search.__doc__  # absl prints the main module's docstring as the usage

if __name__ == "__main__":
  search.run()
