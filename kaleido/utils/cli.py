"""Shared behaviour of the command-line tools."""

from __future__ import annotations

import functools
import sys
from typing import Callable

from absl import app
from absl import flags

from kaleido import errors


INTERRUPTED = 128 + 2  # the shell's exit status for a process ended by SIGINT


def user_errors_as_messages(main: Callable[..., None]) -> Callable[..., None]:
  """Wraps an absl `main`: a KaleidoError becomes one line on stderr and exit status 1, Ctrl-C
  one line and exit status 130 (the commands write atomically, so what they finished is kept)."""

  @functools.wraps(main)
  def wrapped(*args, **kwargs):
    try:
      main(*args, **kwargs)
    except errors.KaleidoError as error:
      print(f"error: {error}", file=sys.stderr)
      sys.exit(1)
    except errors.Stopped as stopped:
      sys.exit(stopped.exit_status)
    except KeyboardInterrupt:
      print("Interrupted by Ctrl-C; finished work is kept (rerun the same command to go on).",
            file=sys.stderr)
      sys.exit(INTERRUPTED)

  return wrapped


def run(main: Callable[..., None]) -> None:
  """absl's app.run(main), with the flags the library's modules define shown by --helpshort as
  the program's own (a command's flags live in kaleido/, not in the script that runs it)."""
  for module, module_flags in flags.FLAGS.flags_by_module_dict().items():
    if module.startswith("kaleido"):
      for flag in module_flags:
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
  app.run(main)
