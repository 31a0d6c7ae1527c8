"""Reading a catalog's image files: decoding, and refusing files that stop part-way.

Decoders are lenient: OpenCV (libjpeg) decodes a JPEG cut off mid-scan into an image whose lower
part is grey and only warns on stderr; a PNG missing its last chunks decodes the same way. Such a
row would be written with a wrong picture, so `read_image` first checks that the file holds its
format's end: the JPEG end-of-image marker after the last scan, the PNG IEND chunk.

A file whose header declares more than MAX_PIXELS pixels is refused before it is decoded (a small
PNG can declare 20000 x 20000 and take 17 GB to prepare). Transparent pixels are laid on white,
the background product photos have (dropping the alpha channel would show them in whatever colour
the file stores under them), and 16-bit images are cut to their 8 high bits.
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
TOO_LARGE = "image_too_large"

MAX_PIXELS = 50_000_000  # e.g. 8660 x 5773; a product photo needs far fewer

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SOI = b"\xff\xd8"
# Markers without a length field: TEM, RST0-7, SOI, EOI.
_STANDALONE_MARKERS = {0x01, *range(0xD0, 0xDA)}
# Start-of-frame markers SOF0-SOF15 (0xC4 DHT, 0xC8 JPG and 0xCC DAC are not frames).
_START_OF_FRAME = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


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


def _png_size(data: bytes) -> tuple[int, int] | None:
  """(width, height) of a PNG's IHDR chunk, or None when there is none."""
  if len(data) < 24 or data[12:16] != b"IHDR":
    return None
  return struct.unpack(">II", data[16:24])


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
  """(width, height) of a JPEG's first start-of-frame segment, or None when none is found
  before the first scan."""
  position = 2
  while position + 9 <= len(data) and data[position] == 0xFF:
    marker = data[position + 1]
    if marker == 0xFF:
      position += 1
      continue
    if marker in _STANDALONE_MARKERS:
      position += 2
      continue
    if marker in _START_OF_FRAME:
      height, width = struct.unpack(">HH", data[position + 5:position + 9])
      return width, height
    if marker == 0xDA:
      return None
    (length,) = struct.unpack(">H", data[position + 2:position + 4])
    position += 2 + length
  return None


def declared_size(data: bytes) -> tuple[int, int] | None:
  """(width, height) a JPEG or PNG file declares in its header; None for other formats."""
  if data.startswith(_JPEG_SOI):
    return _jpeg_size(data)
  if data.startswith(_PNG_SIGNATURE):
    return _png_size(data)
  return None


def file_state(data: bytes) -> str:
  """COMPLETE, TRUNCATED or CORRUPT for a JPEG or PNG file by its structure; COMPLETE for other
  formats (they are left to the decoder)."""
  if data.startswith(_JPEG_SOI):
    return _jpeg_state(data)
  if data.startswith(_PNG_SIGNATURE):
    return _png_state(data)
  return COMPLETE


def decode(data: bytes) -> tuple[np.ndarray | None, str | None]:
  """(H, W, 3) uint8 RGB of an encoded image (grey becomes RGB, transparency is laid on white),
  or (None, reason)."""
  if not data:
    return None, CORRUPT
  size = declared_size(data)
  if size is not None and size[0] * size[1] > MAX_PIXELS:
    return None, TOO_LARGE
  state = file_state(data)
  if state != COMPLETE:
    return None, state
  # JPEG has no alpha and may carry an EXIF orientation, which IMREAD_COLOR applies.
  flags = cv2.IMREAD_COLOR if data.startswith(_JPEG_SOI) else cv2.IMREAD_UNCHANGED
  try:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
  except cv2.error:  # e.g. more pixels than OpenCV's own limit, in a format not checked above
    return None, TOO_LARGE
  if image is None or image.dtype not in (np.uint8, np.uint16) or image.size == 0:
    return None, CORRUPT
  if image.shape[0] * image.shape[1] > MAX_PIXELS:
    return None, TOO_LARGE
  return _to_rgb(image), None


def _to_rgb(image: np.ndarray) -> np.ndarray:
  """(H, W, 3) uint8 RGB of a decoded grey, BGR or BGRA image of 8 or 16 bits."""
  if image.dtype == np.uint16:
    image = (image >> 8).astype(np.uint8)
  if image.ndim == 2 or image.shape[2] == 1:
    return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
  if image.shape[2] == 4:
    alpha = image[..., 3:].astype(np.float32) / 255.0
    on_white = image[..., :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
    image = np.round(on_white).astype(np.uint8)
  return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_image(path: str) -> tuple[np.ndarray | None, str | None]:
  """The image file at `path` (local, or a URL: kaleido.utils.filesystems) decoded by `decode`,
  or (None, MISSING)."""
  data = filesystems.read_bytes(path)
  if data is None:
    return None, MISSING
  return decode(data)
