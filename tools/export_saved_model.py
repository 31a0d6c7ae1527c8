"""`python tools/export_saved_model.py`: the `kaleido-export` command
(kaleido/commands/export_saved_model.py, whose docstring is this script's usage)."""

from kaleido.commands import export_saved_model

__doc__ = export_saved_model.__doc__  # absl prints the main module's docstring as the usage

if __name__ == "__main__":
  export_saved_model.run()
