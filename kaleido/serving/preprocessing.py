"""Raw inputs -> model inputs in TensorFlow ops only, for exported graphs (paper 3.2 and 3.5).

The same steps data/prepare.py and the reader take, written so a SavedModel can run them with no
Python of this project: decode the image bytes; the classical foreground estimator
(kaleido.patches.foreground.ClassicalForeground: border-colour distance, opening and closing with
OpenCV's 5x5 ellipse, the largest 8-connected component, its holes filled); the squared product
box with its margin (kaleido_grid.square_crop_box); the crop, shrunk to the largest side the
patches read and passed through the same JPEG quality as the stored crops; the 55 patches and
their boxes (kaleido.patches.cutting). Texts: WordPiece ids of the run's vocabulary (a SavedModel
asset) as `[CLS] pieces [SEP]`, cut and padded to the run's length.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text

from kaleido.patches import cutting
from kaleido.patches import foreground
from kaleido.patches import generator
from kaleido.patches import kaleido_grid
from kaleido.text import vocab as vocab_lib
from kaleido.utils import text_validity

_SUFFIX = "##"
# OpenCV's 5x5 MORPH_ELLIPSE (cv2.getStructuringElement), the classical estimator's kernel.
_ELLIPSE_5 = np.array([[0, 0, 1, 0, 0], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [1, 1, 1, 1, 1],
                       [0, 0, 1, 0, 0]], np.float32)


def decode_image(image_bytes: tf.Tensor) -> tf.Tensor:
  """Encoded JPEG, PNG, GIF or BMP bytes (grey, RGB or RGBA) -> (H, W, 3) uint8 RGB."""
  image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
  return tf.ensure_shape(image, [None, None, 3])


def _dilate(mask: tf.Tensor, kernel: np.ndarray) -> tf.Tensor:
  """Binary dilation of (H, W) float {0, 1} by `kernel`; outside the image counts as 0."""
  size = kernel.shape[0]
  pad = size // 2
  padded = tf.pad(mask, [[pad, pad], [pad, pad]])[tf.newaxis, :, :, tf.newaxis]
  filters = tf.constant(np.where(kernel > 0, 0.0, -1e9)[:, :, np.newaxis], tf.float32)
  return tf.nn.dilation2d(padded, filters, strides=[1, 1, 1, 1], padding="VALID",
                          data_format="NHWC", dilations=[1, 1, 1, 1])[0, :, :, 0]


def _erode(mask: tf.Tensor, kernel: np.ndarray) -> tf.Tensor:
  """Binary erosion; outside the image counts as 1 (OpenCV's default border)."""
  return 1.0 - _dilate(1.0 - mask, kernel[::-1, ::-1])


def _propagate(values: tf.Tensor, allowed: tf.Tensor, step) -> tf.Tensor:
  """Repeats `values = where(allowed, step(values), values)` until nothing changes."""

  def body(current, _):
    updated = tf.where(allowed, step(current), current)
    return updated, tf.reduce_any(tf.not_equal(updated, current))

  values, _ = tf.while_loop(lambda _, changed: changed, body, [values, tf.constant(True)])
  return values


def _largest_component(mask: tf.Tensor) -> tf.Tensor:
  """(H, W) bool -> the largest 8-connected component of `mask` (ties: the one whose first pixel
  comes first in raster order, as OpenCV numbers them)."""
  height, width = tf.shape(mask)[0], tf.shape(mask)[1]
  big = tf.cast(height * width, tf.float32)
  index = tf.reshape(tf.range(height * width, dtype=tf.float32), [height, width])
  labels = tf.where(mask, index, big)

  def neighbour_min(values):
    pooled = -tf.nn.max_pool2d(-values[tf.newaxis, :, :, tf.newaxis], 3, 1, "SAME")
    return pooled[0, :, :, 0]

  labels = _propagate(labels, mask, neighbour_min)
  flat = tf.cast(tf.reshape(labels, [-1]), tf.int32)
  areas = tf.math.bincount(flat, minlength=height * width + 1)[:height * width]
  largest = tf.argmax(areas, output_type=tf.int32)  # the first of equal areas
  return tf.logical_and(mask, tf.equal(tf.cast(labels, tf.int32), largest))


def _fill_holes(component: tf.Tensor) -> tf.Tensor:
  """The component with every pixel not 4-connected to the image border through the
  background set to foreground (what filling its external contour gives)."""
  background = tf.logical_not(component)
  height, width = tf.shape(component)[0], tf.shape(component)[1]
  rows = tf.range(height)[:, tf.newaxis]
  columns = tf.range(width)[tf.newaxis, :]
  border = (rows == 0) | (rows == height - 1) | (columns == 0) | (columns == width - 1)
  outside = tf.cast(tf.logical_and(background, border), tf.float32)
  cross = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], np.float32)
  outside = _propagate(outside, background, lambda values: _dilate(values, cross))
  return tf.logical_not(tf.cast(outside, tf.bool))


def classical_mask(image: tf.Tensor, config: foreground.ForegroundConfig) -> tf.Tensor:
  """(H, W, 3) uint8 -> (H, W) bool, as ClassicalForeground.mask computes it."""
  width = config.border_width
  pixels = tf.cast(image, tf.float32)
  border = tf.concat([tf.reshape(pixels[:width], [-1, 3]), tf.reshape(pixels[-width:], [-1, 3]),
                      tf.reshape(pixels[:, :width], [-1, 3]),
                      tf.reshape(pixels[:, -width:], [-1, 3])], axis=0)
  ordered = tf.sort(border, axis=0)
  count = tf.shape(ordered)[0]
  background = (ordered[(count - 1) // 2] + ordered[count // 2]) / 2.0  # numpy's median
  distance = tf.sqrt(tf.reduce_sum(tf.square(pixels - background), axis=-1))
  raw = tf.cast(distance > config.distance_threshold, tf.float32)
  if config.morphology_kernel != 5:
    raise ValueError("The exported classical estimator uses OpenCV's 5x5 ellipse; "
                     f"morphology_kernel={config.morphology_kernel} is not supported.")
  opened = _dilate(_erode(raw, _ELLIPSE_5), _ELLIPSE_5)
  closed = _erode(_dilate(opened, _ELLIPSE_5), _ELLIPSE_5)
  component = _largest_component(closed > 0.5)
  return tf.cond(tf.reduce_any(component), lambda: _fill_holes(component),
                 lambda: component)


def _round_half_even(value: tf.Tensor) -> tf.Tensor:
  """Python's round() (half to even) as int32."""
  return tf.cast(tf.round(value), tf.int32)


def crop_box(mask: tf.Tensor, config: generator.PatchConfig) -> tuple[tf.Tensor, tf.Tensor]:
  """(x1, y1, x2, y2) int32 pixel box of the squared product crop and whether a foreground was
  found (else the whole image), as KaleidoPatchGenerator.crop_box."""
  height, width = tf.shape(mask)[0], tf.shape(mask)[1]
  area = tf.reduce_sum(tf.cast(mask, tf.float32))
  found = area >= config.foreground.min_area_fraction * tf.cast(height * width, tf.float32)

  def squared():
    ys = tf.where(tf.reduce_any(mask, axis=1))[:, 0]
    xs = tf.where(tf.reduce_any(mask, axis=0))[:, 0]
    x1, x2 = tf.cast(xs[0], tf.float32), tf.cast(xs[-1] + 1, tf.float32)
    y1, y2 = tf.cast(ys[0], tf.float32), tf.cast(ys[-1] + 1, tf.float32)
    side = tf.maximum(x2 - x1, y2 - y1) * (1.0 + 2.0 * config.crop_margin)
    side_x = tf.minimum(_round_half_even(side), width)
    side_y = tf.minimum(_round_half_even(side), height)
    left = _round_half_even((x1 + x2) / 2.0 - tf.cast(side_x, tf.float32) / 2.0)
    top = _round_half_even((y1 + y2) / 2.0 - tf.cast(side_y, tf.float32) / 2.0)
    left = tf.minimum(tf.maximum(left, 0), width - side_x)
    top = tf.minimum(tf.maximum(top, 0), height - side_y)
    return tf.stack([left, top, left + side_x, top + side_y])

  whole = lambda: tf.stack([0, 0, width, height])
  return tf.cond(found, squared, whole), found


def crop(image: tf.Tensor, box: tf.Tensor, config: generator.PatchConfig) -> tf.Tensor:
  """The product crop as data/prepare.py stores it: shrunk (area resampling) so its longest
  side is at most the L5 grid's, then JPEG-coded at the same quality and decoded."""
  pixels = image[box[1]:box[3], box[0]:box[2]]
  height, width = tf.shape(pixels)[0], tf.shape(pixels)[1]
  longest = tf.maximum(height, width)
  limit = config.max_crop_side

  def shrink():
    scale = limit / tf.cast(longest, tf.float64)
    size = tf.stack([tf.maximum(1, tf.cast(tf.round(tf.cast(height, tf.float64) * scale),
                                           tf.int32)),
                     tf.maximum(1, tf.cast(tf.round(tf.cast(width, tf.float64) * scale),
                                           tf.int32))])
    resized = tf.image.resize(pixels, size, method="area")
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)

  pixels = tf.cond(longest > limit, shrink, lambda: pixels)
  coded = tf.io.encode_jpeg(pixels, quality=config.jpeg_quality)
  return tf.io.decode_jpeg(coded, channels=3)


def image_inputs(image_bytes: tf.Tensor, config: generator.PatchConfig) -> dict[str, tf.Tensor]:
  """One encoded image -> {patches (55, P, P, 3) uint8, patch_boxes (55, 5), crop_box (4,)
  normalised [x1, y1, x2, y2], foreground_found}."""
  image = decode_image(image_bytes)
  if config.foreground.method == "classical":
    mask = classical_mask(image, config.foreground)
  elif config.foreground.method == "none":
    mask = tf.ones(tf.shape(image)[:2], tf.bool)
  else:
    raise ValueError(f"The export runs the classical foreground estimator or none, not "
                     f"{config.foreground.method!r}.")
  box, found = crop_box(mask, config)
  size = tf.cast(tf.stack([tf.shape(image)[1], tf.shape(image)[0]] * 2), tf.float32)
  normalised = tf.cast(box, tf.float32) / size
  pixels = crop(image, box, config)
  return {"patches": tf.ensure_shape(cutting.cut_patches(pixels, config.patch_size),
                                     [kaleido_grid.NUM_PATCHES, config.patch_size,
                                      config.patch_size, 3]),
          "patch_boxes": cutting.patch_boxes(normalised), "crop_box": normalised,
          "foreground_found": found}


def batch_image_inputs(image_bytes: tf.Tensor,
                       config: generator.PatchConfig) -> dict[str, tf.Tensor]:
  """(B,) encoded images of any sizes -> `image_inputs` stacked along a batch axis."""
  size = config.patch_size
  signature = {
      "patches": tf.TensorSpec([kaleido_grid.NUM_PATCHES, size, size, 3], tf.uint8),
      "patch_boxes": tf.TensorSpec([kaleido_grid.NUM_PATCHES, kaleido_grid.BOX_DIM],
                                   tf.float32),
      "crop_box": tf.TensorSpec([4], tf.float32), "foreground_found": tf.TensorSpec([], tf.bool)}
  return tf.map_fn(lambda one: image_inputs(one, config), image_bytes,
                   fn_output_signature=signature)


def empty_texts(texts: tf.Tensor) -> tf.Tensor:
  """(B,) bool: the texts that show no character (kaleido.utils.text_validity's rule)."""
  return tf.strings.regex_full_match(texts, text_validity.EMPTY_TEXT_PATTERN)


class TextEncoder(tf.Module):
  """UTF-8 texts -> {input_word_ids, input_mask} (B, L) int32 of a vocabulary file (tracked as
  a SavedModel asset), as KaleidoTokenizer and the reader give them."""

  def __init__(self, vocab_file: str, max_seq_length: int):
    super().__init__()
    ids = vocab_lib.special_ids_of(vocab_file)
    self._cls, self._sep, self._pad = ids.cls_id, ids.sep_id, ids.pad_id
    self._length = max_seq_length
    self.vocab_asset = tf.saved_model.Asset(vocab_file)
    initializer = tf.lookup.TextFileInitializer(
        self.vocab_asset, key_dtype=tf.string, key_index=tf.lookup.TextFileIndex.WHOLE_LINE,
        value_dtype=tf.int64, value_index=tf.lookup.TextFileIndex.LINE_NUMBER)
    self._table = tf.lookup.StaticHashTable(initializer, default_value=ids.unk_id)
    self._bert = tf_text.BertTokenizer(self._table, suffix_indicator=_SUFFIX,
                                       token_out_type=tf.int64, unknown_token="[UNK]",
                                       **vocab_lib.BERT_TOKENIZER_PARAMS)

  def __call__(self, texts: tf.Tensor) -> dict[str, tf.Tensor]:
    pieces = self._bert.tokenize(texts).merge_dims(1, 2)[:, :self._length - 2]
    batch = tf.shape(texts, out_type=tf.int64)[:1]
    cls = tf.fill(tf.concat([batch, [1]], 0), tf.constant(self._cls, tf.int64))
    sep = tf.fill(tf.concat([batch, [1]], 0), tf.constant(self._sep, tf.int64))
    ids = tf.concat([cls, pieces, sep], axis=1)
    word_ids = ids.to_tensor(default_value=self._pad, shape=[None, self._length])
    mask = tf.ones_like(ids).to_tensor(default_value=0, shape=[None, self._length])
    return {"input_word_ids": tf.cast(word_ids, tf.int32), "input_mask": tf.cast(mask, tf.int32)}
