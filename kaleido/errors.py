"""The error types users see as a sentence (or a clean exit) instead of a traceback."""


class KaleidoError(ValueError):
  """Bad input or settings; the message names the problem and the fix."""


class Stopped(Exception):
  """Training stopped early by a signal after saving its checkpoint (already reported); the
  command exits with `exit_status` (128 + the signal's number) and does no further work."""

  def __init__(self, exit_status: int):
    super().__init__(exit_status)
    self.exit_status = exit_status


def first_line(error: BaseException, limit: int = 160) -> str:
  """The first line of `error`'s message (its type's name when it has none), cut to `limit`."""
  return (str(error).strip().splitlines() or [type(error).__name__])[0][:limit]
