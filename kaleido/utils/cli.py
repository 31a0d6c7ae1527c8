"""Shared behaviour of the command-line tools."""

from __future__ import annotations

import functools
import sys
from typing import Callable

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
