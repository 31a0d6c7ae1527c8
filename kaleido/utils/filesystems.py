"""Reading catalog files on any filesystem Apache Beam reads: local paths, and URLs such as
gs://bucket/image.jpg, s3://..., hdfs://..., azfs://... through Beam's FileSystems (which
registers each scheme whose client library is installed: `apache-beam[gcp]` for gs://,
`apache-beam[aws]` for s3://).

Local paths keep Python's own file functions, so the process pool and the tests read exactly as
before; only a path with a scheme goes through Beam.
"""

from __future__ import annotations

import os
import posixpath
import re
from typing import BinaryIO

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_EXTRAS = {"gs": "gcp", "s3": "aws", "hdfs": "hadoop", "azfs": "azure"}


class FilesystemError(ValueError):
  """A URL whose filesystem is not available here."""


def is_url(path: str) -> bool:
  """Whether `path` names a file on another filesystem than the local one (scheme://...)."""
  return bool(_SCHEME.match(path))


def absolute(path: str) -> str:
  """`path` made absolute; a URL is already."""
  return path if is_url(path) else os.path.abspath(path)


def folder_of(path: str) -> str:
  """The folder holding the file `path` (absolute)."""
  return posixpath.dirname(path) if is_url(path) else os.path.dirname(os.path.abspath(path))


def join(folder: str, name: str) -> str:
  """`name` relative to `folder`, unless `name` is absolute or a URL itself."""
  if is_url(name) or os.path.isabs(name):
    return name
  return posixpath.join(folder, name) if is_url(folder) else os.path.join(folder, name)


def _beam_filesystems():
  from apache_beam.io import filesystems  # pylint: disable=g-import-not-at-top
  return filesystems.FileSystems


def _filesystem_for(path: str):
  """Beam's FileSystems, after checking that one is registered for the scheme of `path`."""
  file_systems = _beam_filesystems()
  try:
    file_systems.get_filesystem(path)
  except ValueError as error:
    scheme = path.split("://", 1)[0]
    extra = _EXTRAS.get(scheme, scheme)
    raise FilesystemError(
        f"No filesystem for {scheme}:// paths is installed here (reading {path!r}); install Beam's "
        f"client for it (pip install 'apache-beam[{extra}]') or copy the files to a local "
        "or mounted disk.") from error
  return file_systems


def exists(path: str) -> bool:
  """Whether the file `path` exists."""
  return _filesystem_for(path).exists(path) if is_url(path) else os.path.exists(path)


def size(path: str) -> int:
  """The size of the file `path` in bytes."""
  if not is_url(path):
    return os.path.getsize(path)
  return _filesystem_for(path).match([path])[0].metadata_list[0].size_in_bytes


def open_binary(path: str) -> BinaryIO:
  """The file `path` opened for reading bytes (seekable), with no decompression."""
  if not is_url(path):
    return open(path, "rb")
  from apache_beam.io.filesystem import CompressionTypes  # pylint: disable=g-import-not-at-top
  return _filesystem_for(path).open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def read_bytes(path: str) -> bytes | None:
  """The bytes of the file `path`, or None if there is no such file. Other failures (a network
  error, say) raise, so a retried worker reads the file again instead of dropping its row."""
  if not is_url(path):
    try:
      with open(path, "rb") as f:
        return f.read()
    except (FileNotFoundError, IsADirectoryError, PermissionError):
      return None
  try:
    with open_binary(path) as f:
      return f.read()
  except OSError:
    if not exists(path):
      return None
    raise
