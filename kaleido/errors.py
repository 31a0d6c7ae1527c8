"""The one error type users see as a sentence instead of a traceback."""


class KaleidoError(ValueError):
  """Bad input or settings; the message names the problem and the fix."""
