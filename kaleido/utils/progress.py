"""A console progress line with rate and ETA for long jobs (data preparation, training)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def format_duration(seconds: float) -> str:
  """Seconds -> `h:mm:ss` or `m:ss`."""
  seconds = max(0, int(round(seconds)))
  hours, rest = divmod(seconds, 3600)
  minutes, secs = divmod(rest, 60)
  return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
  """Prints `description done/total (pct) rate unit/s ETA` at most every `interval` seconds.

  On a terminal the line is redrawn in place; in a log file each report is its own line.
  """

  def __init__(self, total: int, description: str, unit: str = "it", initial: int = 0,
               stream: TextIO | None = None, interval: float | None = None):
    self.total = total
    self.done = initial
    self._initial = initial
    self._description = description
    self._unit = unit
    self._stream = stream or sys.stderr
    self._tty = self._stream.isatty()
    self._interval = interval if interval is not None else (0.5 if self._tty else 15.0)
    self._start = time.monotonic()
    self._last_report = 0.0
    self._postfix = ""

  @property
  def rate(self) -> float:
    """Units per second since the start (counting only work done in this run)."""
    elapsed = time.monotonic() - self._start
    return (self.done - self._initial) / elapsed if elapsed > 0 else 0.0

  def line(self) -> str:
    """The current progress line."""
    rate = self.rate
    percent = 100.0 * self.done / self.total if self.total else 100.0
    eta = format_duration((self.total - self.done) / rate) if rate > 0 else "?"
    line = (f"{self._description} {self.done}/{self.total} ({percent:.1f}%) "
            f"{rate:.1f} {self._unit}/s ETA {eta}")
    return f"{line} {self._postfix}" if self._postfix else line

  def update(self, count: int = 1, postfix: str = "") -> None:
    """Records `count` more units (and a status such as the loss); reports every interval."""
    self.done += count
    self._postfix = postfix or self._postfix
    now = time.monotonic()
    if now - self._last_report >= self._interval:
      self._last_report = now
      self._write(self.line())

  def close(self) -> None:
    """Reports the final line with the elapsed time."""
    elapsed = format_duration(time.monotonic() - self._start)
    self._write(f"{self.line()} done in {elapsed}")
    if self._tty:
      self._stream.write("\n")
      self._stream.flush()

  def _write(self, text: str) -> None:
    if self._tty:
      self._stream.write("\r\033[K" + text)
    else:
      self._stream.write(text + "\n")
    self._stream.flush()
