"""Signals as requests a long loop checks at a safe point (after a step, after a chunk).

Python's default Ctrl-C raises KeyboardInterrupt wherever the main thread is, also inside a
TensorFlow call, which may turn it into another error (a bare TypeError from a C++ op) or print
it from a finalizer. A `StopRequest` instead records the first signal; the loop stops at its next
safe point. A second Ctrl-C raises KeyboardInterrupt at once, for a user who will not wait. A
signal the process ignores (SIGINT of a background job) stays ignored.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
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


def ctrl_c_notice(item: str, kept: str) -> str:
  """What a command prints at the first Ctrl-C when it stops after the `item` in hand."""
  return (f"Ctrl-C: stopping after the {item} in hand (finished {kept} are kept); Ctrl-C again "
          "stops at once.")


def stopping_between(items: Iterable[T], item: str, kept: str) -> Iterator[T]:
  """Yields `items`, taking Ctrl-C only between them: after the caller has finished the `item` in
  hand, KeyboardInterrupt (the finished `kept` stay; a rerun goes on from them)."""
  with StopRequest(("SIGINT",), ctrl_c_notice(item, kept)) as stop:
    for each in items:
      yield each
      stop.raise_if_requested()


_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_PARENT_POLL_SECONDS = 1.0
_became_worker = False  # a process is made a worker once (Beam sets up many DoFns in one)


def become_worker(driver_pid: int | None = None) -> None:
  """In a worker process: leaves Ctrl-C to the process that started it (which stops handing out
  work and keeps what is finished) and ends when that process dies, by whatever signal (a
  SIGKILL of the command leaves no worker behind): the kernel's parent-death signal on Linux,
  and everywhere a thread that watches for the parent to change. Does nothing in the process
  `driver_pid` itself (Beam's in-memory runner runs its DoFns there). Python sets signal
  handlers from the main thread only; called from another (a Beam worker's DoFn setup), Ctrl-C
  keeps its handler."""
  global _became_worker
  if os.getpid() == driver_pid or _became_worker:
    return
  _became_worker = True
  if threading.current_thread() is threading.main_thread():
    signal.signal(signal.SIGINT, signal.SIG_IGN)
  started_by = multiprocessing.parent_process()
  parent = started_by.pid if started_by is not None else os.getppid()
  if sys.platform.startswith("linux"):
    try:
      ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
      pass

  def watch() -> None:
    while os.getppid() == parent:
      time.sleep(_PARENT_POLL_SECONDS)
    os._exit(1)

  threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


# The watchdog of reaping_descendants: notes the descendants of the process that started it every
# 0.2 s and, once that process is gone, kills the ones it noted (psutil checks each one's start
# time, so a reused pid is never killed).
_REAPER = """
import os, signal, sys, time
import psutil
signal.signal(signal.SIGINT, signal.SIG_IGN)
parent = int(sys.argv[1])
seen = {}
while os.getppid() == parent:
  try:
    seen.update((child.pid, child) for child in psutil.Process(parent).children(recursive=True)
                if child.pid != os.getpid())
  except psutil.Error:
    break
  time.sleep(0.2)
for child in seen.values():
  try:
    child.kill()
  except psutil.Error:
    pass
"""


@contextlib.contextmanager
def reaping_descendants() -> Iterator[None]:
  """While entered, a watchdog process kills this process's descendants if this process dies
  (SIGKILL included): for worker processes that a library starts and that cannot be told to
  become_worker() before they do work (Apache Beam's DirectRunner). A descendant started less
  than 0.2 s before the death may escape it."""
  watchdog = subprocess.Popen([sys.executable, "-c", _REAPER, str(os.getpid())],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
  try:
    yield
  finally:
    watchdog.terminate()
    watchdog.wait()
