"""Atomic file writes (a reader never sees a half-written file under its final name; a rerun
clears what a killed writer left) and checked JSON reads (a missing or damaged file is one
sentence naming it and the fix)."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import re
from typing import Any, Iterator

from kaleido import errors


class DamagedFileError(errors.KaleidoError):
  """A file the project wrote is missing or cannot be read back; the message says how to fix it."""


_TEMPORARY = re.compile(r"\.tmp-(\d+)$")  # atomic_path's, ending in its writer's pid


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
  """Yields a temporary path beside `path`; renames it to `path` when the block succeeds."""
  tmp_path = f"{path}.tmp-{os.getpid()}"
  try:
    yield tmp_path
    os.replace(tmp_path, path)
  finally:
    if os.path.exists(tmp_path):
      os.remove(tmp_path)


def _process_alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


def remove_stale_temporaries(*folders: str) -> None:
  """Deletes the atomic_path temporaries in `folders` whose writer is gone (killed mid-write);
  those of a live writer (another process building the same folder) stay."""
  for folder in folders:
    for path in glob.glob(os.path.join(glob.escape(folder), "*.tmp-*")):
      match = _TEMPORARY.search(path)
      if match and not _process_alive(int(match.group(1))):
        with contextlib.suppress(FileNotFoundError):
          os.remove(path)


def write_json(path: str, payload: Any) -> None:
  """Writes `payload` as indented JSON, atomically."""
  with atomic_path(path) as tmp_path:
    with open(tmp_path, "w", encoding="utf-8") as f:
      json.dump(payload, f, indent=2, sort_keys=True)
      f.write("\n")


def read_json(path: str, fix: str = "rebuild it with the command that wrote it",
              kind: type = dict) -> Any:
  """The JSON value of type `kind` in `path`; a DamagedFileError naming the file and `fix` when
  it is missing, not UTF-8 JSON (truncated, zeroed, garbled) or of another type."""
  try:
    with open(path, encoding="utf-8") as f:
      payload = json.load(f)
  except FileNotFoundError as error:
    raise DamagedFileError(f"{path!r} is missing; {fix}.") from error
  except (UnicodeDecodeError, json.JSONDecodeError) as error:
    raise DamagedFileError(f"{path!r} is damaged (not readable JSON: "
                           f"{errors.first_line(error, 120)}); "
                           f"{fix}.") from error
  if not isinstance(payload, kind):
    raise DamagedFileError(f"{path!r} is damaged (it holds a JSON {type(payload).__name__}, not "
                           f"a {kind.__name__}); {fix}.")
  return payload


def read_json_or_none(path: str, kind: type = dict) -> Any:
  """The JSON value in `path`, or None when it is missing or damaged (for files a rerun
  rebuilds, such as resume records)."""
  try:
    return read_json(path, kind=kind)
  except DamagedFileError:
    return None


def file_sha256(path: str) -> str:
  """Hex SHA-256 of a file's bytes."""
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()
