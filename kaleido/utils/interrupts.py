"""Signals as requests a long loop checks at a safe point (after a step, after a chunk).

Python's default Ctrl-C raises KeyboardInterrupt wherever the main thread is, also inside a
TensorFlow call, which may turn it into another error (a bare TypeError from a C++ op) or print
it from a finalizer. A `StopRequest` instead records the first signal; the loop stops at its next
safe point. A second Ctrl-C raises KeyboardInterrupt at once, for a user who will not wait. A
signal the process ignores (SIGINT of a background job) stays ignored.
"""

from __future__ import annotations

import signal
import sys
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")

DESCRIPTIONS = {"SIGTERM": "SIGTERM", "SIGINT": "Ctrl-C (SIGINT)"}


class StopRequest:
  """While entered, the signals named in `signals` (of DESCRIPTIONS) set `signal_number`; the
  first one prints `notice` (if any) to stderr."""

  def __init__(self, signals: tuple[str, ...] = ("SIGTERM", "SIGINT"), notice: str = ""):
    self.signal_number = 0
    self._signals = signals
    self._notice = notice
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
    if not self.signal_number and self._notice:
      print(f"\n{self._notice}", file=sys.stderr, flush=True)
    self.signal_number = self.signal_number or signum

  def raise_if_requested(self) -> None:
    """At a safe point: KeyboardInterrupt when a stop was requested (the commands' wrapper,
    kaleido.utils.cli, turns it into one line and exit status 130)."""
    if self.requested:
      raise KeyboardInterrupt

  def __exit__(self, *exc):
    for number, previous in self._previous.items():
      signal.signal(number, previous)


def stopping_between(items: Iterable[T], item: str, kept: str) -> Iterator[T]:
  """Yields `items`, taking Ctrl-C only between them: after the caller has finished the `item` in
  hand, KeyboardInterrupt (the finished `kept` stay; a rerun goes on from them)."""
  notice = (f"Ctrl-C: stopping after the {item} in hand (finished {kept} are kept); Ctrl-C again "
            "stops at once.")
  with StopRequest(("SIGINT",), notice) as stop:
    for each in items:
      yield each
      stop.raise_if_requested()
