"""Signals as requests a long loop checks at a safe point (after a step, after a chunk).

Python's default Ctrl-C raises KeyboardInterrupt wherever the main thread is, also inside a
TensorFlow call, which may turn it into another error (a bare TypeError from a C++ op) or print
it from a finalizer. A `StopRequest` instead records the first signal; the loop stops at its next
safe point. A second Ctrl-C raises KeyboardInterrupt at once, for a user who will not wait. A
signal the process ignores (SIGINT of a background job) stays ignored.
"""

from __future__ import annotations

import signal

DESCRIPTIONS = {"SIGTERM": "SIGTERM", "SIGINT": "Ctrl-C (SIGINT)"}


class StopRequest:
  """While entered, the signals named in `signals` (of DESCRIPTIONS) set `signal_number`."""

  def __init__(self, signals: tuple[str, ...] = ("SIGTERM", "SIGINT")):
    self.signal_number = 0
    self._signals = signals
    self._previous = {}

  @property
  def requested(self) -> bool:
    return self.signal_number != 0

  @property
  def description(self) -> str:
    return DESCRIPTIONS[signal.Signals(self.signal_number).name]

  def __enter__(self) -> "StopRequest":
    for name in self._signals:
      number = getattr(signal, name, None)
      if number is not None and signal.getsignal(number) != signal.SIG_IGN:
        self._previous[number] = signal.signal(number, self._handle)
    return self

  def _handle(self, signum, frame):
    del frame
    if signum == signal.SIGINT and self.signal_number == signal.SIGINT:
      raise KeyboardInterrupt
    self.signal_number = self.signal_number or signum

  def __exit__(self, *exc):
    for number, previous in self._previous.items():
      signal.signal(number, previous)
