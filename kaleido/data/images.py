"""Reading a catalog's image files: decoding, and refusing files that stop part-way.

Decoders are lenient: OpenCV (libjpeg) decodes a JPEG cut off mid-scan into an image whose lower
part is grey and only warns on stderr; a PNG missing its last chunks decodes the same way. Such a
row would be written with a wrong picture, so `read_image` first checks that the file holds its
format's end: the JPEG end-of-image marker after the last scan, the PNG IEND chunk.
"""

from __future__ import annotations

import struct

import cv2
import numpy as np

from kaleido.utils import filesystems

# Reasons a row's image is refused (counted in the manifest).
MISSING = "missing_image_file"
CORRUPT = "corrupt_image"
TRUNCATED = "truncated_image"

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SOI = b"\xff\xd8"
# Markers without a length field: TEM, RST0-7, SOI, EOI.
_STANDALONE_MARKERS = {0x01, *range(0xD0, 0xDA)}


COMPLETE = "complete"


def _jpeg_state(data: bytes) -> str:
  """COMPLETE when the JPEG's segments and scans run to an end-of-image marker (embedded EXIF
  thumbnails, inside APP segments, are skipped; bytes after it are allowed), TRUNCATED when the
  data ends before it, CORRUPT when a marker is not where one must be."""
  position = 2
  while position + 2 <= len(data):
    if data[position] != 0xFF:
      return CORRUPT
    marker = data[position + 1]
    if marker == 0xFF:  # fill byte
      position += 1
      continue
    if marker == 0xD9:
      return COMPLETE
    if marker in _STANDALONE_MARKERS:
      position += 2
      continue
    if position + 4 > len(data):
      return TRUNCATED
    (length,) = struct.unpack(">H", data[position + 2:position + 4])
    position += 2 + length
    if marker == 0xDA:  # start of scan: entropy-coded data up to the next real marker
      while True:
        position = data.find(b"\xff", position)
        if position < 0 or position + 1 >= len(data):
          return TRUNCATED
        following = data[position + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7 or following == 0xFF:
          position += 1 if following == 0xFF else 2
          continue
        break
  return TRUNCATED


def _png_state(data: bytes) -> str:
  """COMPLETE when the PNG's chunks run, whole, to its IEND chunk, else TRUNCATED."""
  position = len(_PNG_SIGNATURE)
  while position + 8 <= len(data):
    (length,) = struct.unpack(">I", data[position:position + 4])
    kind = data[position + 4:position + 8]
    end = position + 12 + length  # length, type, data, CRC
    if end > len(data):
      return TRUNCATED
    if kind == b"IEND":
      return COMPLETE
    position = end
  return TRUNCATED


def file_state(data: bytes) -> str:
  """COMPLETE, TRUNCATED or CORRUPT for a JPEG or PNG file by its structure; COMPLETE for other
  formats (they are left to the decoder)."""
  if data.startswith(_JPEG_SOI):
    return _jpeg_state(data)
  if data.startswith(_PNG_SIGNATURE):
    return _png_state(data)
  return COMPLETE


def decode(data: bytes) -> tuple[np.ndarray | None, str | None]:
  """(H, W, 3) uint8 RGB of an encoded image (grey and alpha become RGB), or (None, reason)."""
  state = file_state(data)
  if state != COMPLETE:
    return None, state
  image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
  if image is None:
    return None, CORRUPT
  return cv2.cvtColor(image, cv2.COLOR_BGR2RGB), None


def read_image(path: str) -> tuple[np.ndarray | None, str | None]:
  """The image file at `path` (local, or a URL: kaleido.utils.filesystems) decoded by `decode`,
  or (None, MISSING)."""
  data = filesystems.read_bytes(path)
  if data is None:
    return None, MISSING
  return decode(data)
