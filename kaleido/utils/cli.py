"""Shared behaviour of the command-line tools."""

from __future__ import annotations

import functools
import sys
from typing import Callable

from kaleido import errors


def user_errors_as_messages(main: Callable[..., None]) -> Callable[..., None]:
  """Wraps an absl `main`: a KaleidoError becomes one line on stderr and exit status 1."""

  @functools.wraps(main)
  def wrapped(*args, **kwargs):
    try:
      main(*args, **kwargs)
    except errors.KaleidoError as error:
      print(f"error: {error}", file=sys.stderr)
      sys.exit(1)

  return wrapped
