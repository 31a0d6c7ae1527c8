"""Synthetic catalog photos: one product drawn with cv2 on a light studio background.

A product is a `Style` (garment type, colours, pattern, sleeves, neckline, details) sampled once and
drawn in several views. Every garment type builds its shapes in a unit frame (x right, y down,
about [-1, 1]); a view maps that frame to pixels (scale, shift, small rotation, mirror). Each drawn
element keeps its region name, so `render` returns the pixel box of every visible element together
with the exact foreground mask. No TensorFlow here: this runs at hundreds of images per second.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Sequence, TypeVar

import cv2
import numpy as np

Box = tuple[int, int, int, int]
T = TypeVar("T")
RGB = tuple[int, int, int]

COLOURS: dict[str, RGB] = {
    "black": (30, 30, 32), "navy": (30, 42, 88), "blue": (40, 92, 182), "teal": (18, 122, 122),
    "green": (42, 122, 62), "olive": (112, 110, 48), "mustard": (208, 162, 40),
    "orange": (228, 112, 38), "red": (192, 32, 42), "burgundy": (112, 26, 48),
    "pink": (232, 138, 170), "purple": (102, 60, 142), "brown": (112, 70, 40),
    "camel": (192, 146, 94), "grey": (128, 128, 130), "beige": (214, 194, 158),
}
SECONDARY_COLOURS: dict[str, RGB] = {"white": (246, 244, 238), "black": (28, 28, 30),
                                     "navy": (30, 42, 88), "cream": (238, 226, 196)}
TRIM_COLOURS: dict[str, RGB] = {"black": (34, 32, 32), "brown": (86, 54, 32),
                                "tan": (168, 120, 72), "grey": (118, 118, 122)}
PATTERNS = ("solid", "striped", "polka-dot", "checked", "zigzag", "floral")
SLEEVES = ("sleeveless", "short", "long")
_FLOWER_CENTRE: RGB = (236, 196, 60)
SOLID_WEIGHT = 3.0  # how much likelier a solid colour is than each pattern
EDGE_SHADE = 0.3  # darkening of cloth at its silhouette


@dataclasses.dataclass(frozen=True)
class Shape:
  """A polygon (filled) or polyline in unit coordinates, painted with a palette role."""
  points: np.ndarray  # (K, 2)
  role: str  # "fabric" (patterned cloth) or a flat colour of `_palette`
  fill: bool = True
  width: float = 0.0  # line width in units; 0 draws a 1-pixel outline
  closed: bool = True


Part = tuple[str, list[Shape]]  # region name ("body", "sleeve", a detail key, "trim"...), shapes


@dataclasses.dataclass(frozen=True)
class Style:
  """Everything about a product that its views share."""
  garment: str  # key of GARMENTS
  colour: str
  pattern: str
  secondary: str  # pattern colour, "" for solid
  sleeve: str  # "" when the garment has no sleeves
  neckline: str  # "" when the garment has no neckline
  details: tuple[str, ...]
  trim: str  # belts, straps, soles: a TRIM_COLOURS key
  pattern_period: float  # units
  pattern_phase: tuple[float, float]


@dataclasses.dataclass(frozen=True)
class GarmentType:
  """A subcategory: its labels, the nouns naming it, its options and how to draw it."""
  key: str
  category: str
  subcategory: str
  nouns: tuple[str, ...]
  build: Callable[[Style, bool], list[Part]]  # (style, back view) -> parts in drawing order
  sleeves: tuple[str, ...] = ()
  necklines: tuple[str, ...] = ()
  detail_groups: tuple[tuple[str, ...], ...] = ()  # at most one per group; "" means none
  patterns: tuple[str, ...] = PATTERNS
  colours: tuple[str, ...] = tuple(COLOURS)
  profile: bool = False  # drawn from the side: the second view is the mirrored other side


@dataclasses.dataclass
class Rendering:
  """One drawn view: the RGB image, the product mask and the boxes of its visible regions."""
  image: np.ndarray  # (S, S, 3) uint8
  mask: np.ndarray  # (S, S) bool
  regions: dict[str, list[Box]]


# ---------------------------------------------------------------------------------------------
# Geometry helpers (unit frame).


def _pts(*xy: float) -> np.ndarray:
  return np.asarray(xy, np.float64).reshape(-1, 2)


def _ellipse(cx: float, cy: float, rx: float, ry: float, start: float = 0.0, end: float = 360.0,
             n: int = 24) -> np.ndarray:
  """Points on an elliptic arc; angles in degrees, 0 = right, 90 = down."""
  angles = np.radians(np.linspace(start, end, n))
  return np.stack([cx + rx * np.cos(angles), cy + ry * np.sin(angles)], axis=1)


def _rect(x1: float, y1: float, x2: float, y2: float) -> np.ndarray:
  return _pts(x1, y1, x2, y1, x2, y2, x1, y2)


def _rounded_rect(x1: float, y1: float, x2: float, y2: float, r: float) -> np.ndarray:
  return np.concatenate([
      _ellipse(x2 - r, y1 + r, r, r, 270, 360, 6), _ellipse(x2 - r, y2 - r, r, r, 0, 90, 6),
      _ellipse(x1 + r, y2 - r, r, r, 90, 180, 6), _ellipse(x1 + r, y1 + r, r, r, 180, 270, 6)])


def _mirror(points: np.ndarray) -> np.ndarray:
  return points * np.array([-1.0, 1.0])


def _symmetric(right: np.ndarray) -> np.ndarray:
  """Closes a right-hand outline (top to bottom) with its mirror image."""
  return np.concatenate([right, _mirror(right)[::-1]])


def _pair(region: str, shapes: Sequence[Shape]) -> list[Part]:
  """A part and its mirror image (sleeves, pockets)."""
  mirrored = [dataclasses.replace(s, points=_mirror(s.points)) for s in shapes]
  return [(region, list(shapes)), (region, mirrored)]


def _line(points: np.ndarray, role: str, width: float = 0.0, closed: bool = False) -> Shape:
  return Shape(points, role, fill=False, width=width, closed=closed)


def _buttons(xs: Sequence[float], ys: Sequence[float], radius: float = 0.028) -> list[Shape]:
  return [Shape(_ellipse(x, y, radius, radius, n=12), "button") for x in xs for y in ys]


def _logo(cx: float, cy: float, half: float, round_badge: bool) -> list[Shape]:
  """A contrasting badge with a small mark inside."""
  badge = (_ellipse(cx, cy, half, half, n=20) if round_badge else
           _rect(cx - half, cy - half * 0.6, cx + half, cy + half * 0.6))
  mark = _pts(cx - half * 0.45, cy + half * 0.3, cx, cy - half * 0.4, cx + half * 0.45,
              cy + half * 0.3)
  return [Shape(badge, "contrast"), Shape(mark, "logo_mark")]


def _zip(x: float, y1: float, y2: float) -> list[Shape]:
  return [_line(_pts(x, y1, x, y2), "metal", 0.022),
          Shape(_rect(x - 0.018, y1, x + 0.018, y1 + 0.07), "metal")]


def _belt(y: float, half_width: float) -> list[Shape]:
  return [Shape(_rect(-half_width, y - 0.04, half_width, y + 0.04), "trim"),
          _line(_rect(-0.06, y - 0.055, 0.06, y + 0.055), "gold", 0.02, closed=True)]


# ---------------------------------------------------------------------------------------------
# Torso garments: tops, sweaters, dresses, jackets and coats.


@dataclasses.dataclass(frozen=True)
class Torso:
  """The outline of a torso garment in unit coordinates."""
  shoulder: float  # half-width at the shoulder seam
  neck: float  # half-width of the neck opening
  waist: tuple[float, float]  # (half-width, y)
  hem: tuple[float, float]  # (half-width, y)
  top: float = -0.72
  rib: bool = False  # ribbed hem and cuffs
  sleeve_reach: float = 0.3  # how far long sleeves spread out

  @property
  def armpit(self) -> float:
    return self.top + 0.4

  def half_width(self, y: float) -> float:
    ys = [self.armpit, self.waist[1], self.hem[1]]
    xs = [self.shoulder + 0.01, self.waist[0], self.hem[0]]
    return float(np.interp(y, ys, xs))


def _torso_body(t: Torso, sleeveless: bool) -> tuple[np.ndarray, np.ndarray]:
  """The body outline and, when sleeveless, the right armhole curve."""
  shoulder = t.neck + 0.12 if sleeveless else t.shoulder
  armhole = _ellipse(t.shoulder + 0.01, t.top + 0.04, t.shoulder + 0.01 - shoulder,
                     t.armpit - t.top + 0.02, 180, 90, 8)
  start = _pts(t.neck, t.top, shoulder, t.top + 0.04)
  side = armhole if sleeveless else _pts(t.shoulder + 0.01, t.armpit)
  right = np.concatenate([start, side, _pts(t.waist[0], t.waist[1], t.hem[0], t.hem[1])])
  return _symmetric(right), armhole


def _sleeve(t: Torso, sleeve: str) -> list[Shape]:
  """The right sleeve (viewer's right)."""
  s, top, reach = t.shoulder, t.top, t.sleeve_reach
  if sleeve == "short":
    return [Shape(_pts(s - 0.01, top + 0.04, s + 0.27, top + 0.3, s + 0.15, top + 0.46, s + 0.01,
                       t.armpit), "fabric")]
  cuff_y = top + 1.26
  shapes = [Shape(_pts(s - 0.01, top + 0.04, s + reach * 0.7, top + 0.5, s + reach, cuff_y,
                       s + reach - 0.17, cuff_y + 0.02, s + 0.08, top + 0.62, s + 0.01, t.armpit),
                  "fabric")]
  if t.rib:
    shapes.append(Shape(_pts(s + reach - 0.005, cuff_y - 0.08, s + reach, cuff_y,
                             s + reach - 0.17, cuff_y + 0.02, s + reach - 0.165, cuff_y - 0.06),
                        "rib"))
  return shapes


def _neckline(t: Torso, neckline: str, back: bool) -> list[Part]:
  """The neckline parts; from the back only crew necks, collars, lapels and hoods show."""
  n, top = t.neck, t.top
  if neckline == "hooded":
    hood = Shape(_ellipse(0, top - 0.02, n + 0.17, 0.22, n=28), "fabric")
    inner = (_line(_pts(0, top - 0.24, 0, top + 0.1), "outline") if back else
             Shape(_ellipse(0, top + 0.02, n + 0.04, 0.14, n=24), "shade"))
    return [("neckline", [hood, inner])]
  if back or neckline == "crew":
    band = _ellipse(0, top - 0.01, n + 0.02, 0.12 if not back else 0.05, 0, 180, 16)
    region = "trim" if back and neckline == "v-neck" else "neckline"
    return [(region, [Shape(_ellipse(0, top, n, 0.09 if not back else 0.03, 0, 180, 16), "shade"),
                      _line(band, "rib", 0.035)])]
  if neckline == "v-neck":
    v = _pts(-n, top, n, top, 0, top + 0.32)
    return [("neckline", [Shape(v, "shade"),
                          _line(_pts(-n - 0.02, top - 0.01, 0, top + 0.35, n + 0.02, top - 0.01),
                                "rib", 0.035)])]
  if neckline == "lapel":
    inner = Shape(_pts(-n, top, n, top, 0, top + 0.52), "inner")
    lapel = _pts(n, top - 0.02, n + 0.06, top + 0.12, n + 0.11, top + 0.11, n + 0.13, top + 0.24,
                 0.015, top + 0.54)
    return [("neckline", [inner, Shape(lapel, "rib"), Shape(_mirror(lapel), "rib")])]
  flap = _pts(n + 0.05, top - 0.03, n, top + 0.22, 0.01, top + 0.07)
  stand = Shape(_ellipse(0, top, n, 0.06, 0, 180, 12), "shade")
  return [("neckline", [stand, Shape(flap, "collar"), Shape(_mirror(flap), "collar")])]


def _torso_detail(t: Torso, key: str, neckline: str) -> list[Part]:
  """A front detail of a torso garment at its usual place."""
  top, hem_y = t.top, t.hem[1]
  if key == "chest_pocket":
    return [(key, [Shape(_rect(0.1, top + 0.34, 0.3, top + 0.58), "pocket"),
                   _line(_pts(0.1, top + 0.38, 0.3, top + 0.38), "outline")])]
  if key == "hip_pockets":
    y = min(hem_y - 0.22, t.waist[1] + 0.35)
    flap = Shape(_rect(0.12, y - 0.1, 0.36, y), "pocket")
    return _pair(key, [flap, _line(_pts(0.12, y - 0.1, 0.36, y - 0.1), "outline", 0.015)])
  if key == "kangaroo_pocket":
    y1, y2 = hem_y - 0.42, hem_y - 0.12
    return [(key, [Shape(_pts(-0.24, y1, 0.24, y1, 0.34, y2, -0.34, y2), "pocket")])]
  if key == "front_buttons":
    start = top + {"lapel": 0.6, "v-neck": 0.4}.get(neckline, 0.2)
    ys = np.linspace(start, hem_y - 0.14, max(3, int((hem_y - start) / 0.22)))
    return [("trim", [_line(_pts(0, top + 0.05, 0, hem_y), "outline")]),
            (key, _buttons([0.0], ys))]
  if key == "placket_buttons":
    return [("trim", [_line(_rect(-0.045, top + 0.02, 0.045, top + 0.36), "outline", closed=True)]),
            (key, _buttons([0.0], [top + 0.12, top + 0.26]))]
  if key == "front_zip":
    return [(key, _zip(0.0, top + 0.04, hem_y - 0.01))]
  if key == "chest_logo":
    return [(key, _logo(0.2, top + 0.36, 0.07, round_badge=False))]
  if key == "centre_logo":
    return [(key, _logo(0.0, top + 0.52, 0.15, round_badge=True))]
  if key == "waist_belt":
    y = t.waist[1]
    return [(key, _belt(y, t.half_width(y) + 0.01))]
  raise ValueError(f"Unknown torso detail {key!r}.")


def _torso_builder(t: Torso) -> Callable[[Style, bool], list[Part]]:
  def build(style: Style, back: bool) -> list[Part]:
    sleeveless = style.sleeve == "sleeveless"
    body, armhole = _torso_body(t, sleeveless)
    parts: list[Part] = [("body", [Shape(body, "fabric")])]
    if sleeveless:
      parts += _pair("armhole", [_line(armhole, "rib", 0.03)])
    else:
      parts += _pair("sleeve", _sleeve(t, style.sleeve))
    if t.rib:
      y = t.hem[1]
      parts.append(("trim", [Shape(_rect(-t.hem[0], y - 0.08, t.hem[0], y), "rib")]))
    parts += _neckline(t, style.neckline, back)
    for key in style.details:
      if not back or key == "waist_belt":
        parts += _torso_detail(t, key, style.neckline)
    if back and style.neckline != "hooded":  # a centre back seam
      parts.append(("trim", [_line(_pts(0, t.top + 0.05, 0, t.top + 0.45), "outline")]))
    return parts
  return build


# ---------------------------------------------------------------------------------------------
# Bottoms.


def _pants_builder(hem_y: float, outer: float, inner: float) -> Callable[[Style, bool], list[Part]]:
  right = _pts(0.4, -0.92, 0.45, -0.55, outer, hem_y, inner, hem_y, 0.015, -0.3)
  body = _symmetric(right)

  def build(style: Style, back: bool) -> list[Part]:
    parts: list[Part] = [("body", [Shape(body, "fabric")]),
                         ("trim", [Shape(_rect(-0.4, -0.92, 0.4, -0.84), "rib"),
                                   _line(_pts(inner + 0.01, hem_y - 0.04, outer - 0.005,
                                              hem_y - 0.04), "outline"),
                                   _line(_pts(-inner - 0.01, hem_y - 0.04, -outer + 0.005,
                                              hem_y - 0.04), "outline")])]
    if back:
      pocket = _pts(0.1, -0.72, 0.34, -0.72, 0.33, -0.48, 0.22, -0.44, 0.11, -0.48)
      parts += _pair("trim", [_line(pocket, "outline", 0.012, closed=True)])
    for key in style.details:
      if key == "waist_belt":
        parts.append((key, _belt(-0.88, 0.415)))
      elif key == "waist_button" and not back:
        parts.append((key, _buttons([0.0], [-0.88], 0.03)))
      elif key == "fly_zip" and not back:
        fly = _pts(0.0, -0.84, 0.0, -0.5, 0.03, -0.46, 0.08, -0.5, 0.08, -0.84)
        parts.append((key, [_line(fly, "metal", 0.012)]))
      elif key == "front_pockets" and not back:
        curve = _ellipse(0.46, -0.84, 0.2, 0.24, 180, 90, 8)
        parts += _pair(key, [_line(curve, "outline", 0.016)])
    return parts
  return build


def _skirt_builder(hem_y: float, hem_w: float) -> Callable[[Style, bool], list[Part]]:
  hem = _ellipse(0, hem_y - 0.08, hem_w, 0.1, 0, 180, 13)
  body = np.concatenate([_pts(-0.3, -0.75, 0.3, -0.75), hem])

  def build(style: Style, back: bool) -> list[Part]:
    parts: list[Part] = [("body", [Shape(body, "fabric")]),
                         ("trim", [Shape(_rect(-0.3, -0.75, 0.3, -0.67), "rib")])]
    for key in style.details:
      if key == "waist_belt":
        parts.append((key, _belt(-0.71, 0.315)))
      elif key == "front_buttons" and not back:
        parts.append((key, _buttons([0.0], np.linspace(-0.58, hem_y - 0.1,
                                                        max(3, int((hem_y + 0.6) / 0.2))))))
      elif key == "back_zip" and back:
        parts.append((key, _zip(0.0, -0.67, -0.25)))
      elif key == "front_pockets" and not back:
        parts += _pair(key, [_line(_pts(0.18, -0.67, 0.36, -0.4), "outline", 0.016)])
    return parts
  return build


# ---------------------------------------------------------------------------------------------
# Bags, shoes, hats, scarves.


def _tote(style: Style, back: bool) -> list[Part]:
  body = _pts(-0.62, -0.15, 0.62, -0.15, 0.72, 0.8, 0.66, 0.86, -0.66, 0.86, -0.72, 0.8)
  handle = _ellipse(0, -0.15, 0.3, 0.62, 180, 360, 14)
  parts: list[Part] = [("trim", [_line(handle + _pts(0.04, 0.0), "trim", 0.055)]),
                       ("body", [Shape(body, "fabric")]),
                       ("trim", [_line(handle, "trim", 0.055)])]
  if back:
    return parts
  for key in style.details:
    if key == "front_pocket":
      parts.append((key, [Shape(_rect(-0.34, 0.3, 0.34, 0.72), "pocket"),
                          _line(_pts(-0.34, 0.35, 0.34, 0.35), "outline")]))
    elif key == "front_logo":
      parts.append((key, _logo(0.0, 0.1, 0.12, round_badge=False)))
    elif key == "top_zip":
      parts.append((key, [_line(_pts(-0.55, -0.11, 0.55, -0.11), "metal", 0.025),
                          Shape(_rect(0.42, -0.11, 0.47, 0.0), "metal")]))
  return parts


def _backpack(style: Style, back: bool) -> list[Part]:
  body = np.concatenate([_ellipse(0, -0.35, 0.52, 0.45, 180, 360, 16),
                         _pts(0.55, 0.85, -0.55, 0.85)])
  parts: list[Part] = [("trim", [_line(_ellipse(0, -0.8, 0.12, 0.14, 180, 360, 9), "trim", 0.05)]),
                       ("body", [Shape(body, "fabric")])]
  if back:
    strap = _pts(0.22, -0.65, 0.3, -0.2, 0.34, 0.5, 0.42, 0.8)
    return parts + [("trim", [Shape(_rect(-0.38, -0.55, 0.38, 0.55), "rib")])] + _pair(
        "trim", [_line(strap, "trim", 0.1)])
  for key in style.details:
    if key == "front_pocket":
      parts.append((key, [Shape(_rounded_rect(-0.38, 0.2, 0.38, 0.75, 0.1), "pocket")]))
    elif key == "top_zip":
      parts.append((key, [_line(_ellipse(0, -0.3, 0.44, 0.36, 190, 350, 12), "metal", 0.025)]))
    elif key == "front_logo":
      parts.append((key, _logo(0.0, -0.18, 0.1, round_badge=False)))
  return parts


def _shoulder_bag(style: Style, back: bool) -> list[Part]:
  body = _rounded_rect(-0.68, -0.2, 0.68, 0.6, 0.08)
  strap = _ellipse(0, -0.2, 0.62, 0.75, 180, 360, 16)
  parts: list[Part] = [("trim", [_line(strap, "trim", 0.045)]), ("body", [Shape(body, "fabric")])]
  if back:
    if "back_zip_pocket" in style.details:
      parts.append(("back_zip_pocket", [_line(_pts(-0.45, 0.05, 0.45, 0.05), "metal", 0.025),
                                        Shape(_rect(0.4, 0.05, 0.45, 0.15), "metal")]))
    return parts
  flap = np.concatenate([_pts(-0.68, -0.2, 0.68, -0.2), _ellipse(0, 0.12, 0.68, 0.16, 0, 180, 13)])
  parts.append(("trim", [Shape(flap, "fabric")]))
  if "flap_logo" in style.details:
    parts.append(("flap_logo", [Shape(_rect(-0.1, 0.14, 0.1, 0.25), "gold")]))
  return parts


def _shoe_upper(boot: bool) -> np.ndarray:
  if boot:
    return _pts(-0.72, 0.3, -0.72, -0.95, -0.1, -0.95, -0.06, -0.2, 0.25, -0.05, 0.62, 0.04,
                0.86, 0.14, 0.92, 0.3)
  return _pts(-0.9, 0.3, -0.9, -0.12, -0.84, -0.22, -0.5, -0.12, -0.34, -0.36, -0.2, -0.33,
              0.1, -0.1, 0.55, 0.05, 0.84, 0.14, 0.93, 0.3)


def _shoe(boot: bool) -> Callable[[Style, bool], list[Part]]:
  upper = _shoe_upper(boot)
  sole = _pts(-0.95, 0.28, 0.96, 0.28, 0.98, 0.38, 0.9, 0.46, -0.9, 0.46, -0.96, 0.38)

  def build(style: Style, back: bool) -> list[Part]:
    del back  # a profile: the other side shows the same details
    parts: list[Part] = [("body", [Shape(upper, "fabric")]), ("trim", [Shape(sole, "sole")])]
    if not boot:
      parts.append(("trim", [Shape(_pts(-0.82, -0.16, -0.52, -0.08, -0.62, 0.02, -0.82, -0.02),
                                   "shade")]))
    for key in style.details:
      if key == "laces":
        a, b = (_pts(-0.4, -0.8), _pts(-0.08, -0.1)) if boot else (_pts(-0.26, -0.28),
                                                                     _pts(0.2, -0.02))
        ts = np.linspace(0, 1, 6)[:, None]
        rungs = [_line(np.stack([p + _pts(-0.09, 0.05)[0], p + _pts(0.05, -0.06)[0]]), "lace",
                       0.025) for p in a + ts * (b - a)]
        parts.append((key, rungs))
      elif key == "side_zip":
        parts.append((key, _zip(-0.62, -0.9, 0.1)))
      elif key == "side_logo":
        band = np.concatenate([_ellipse(-0.05, 0.3, 0.45, 0.36, 200, 300, 8),
                               _ellipse(-0.05, 0.3, 0.36, 0.26, 300, 200, 8)])
        parts.append((key, [Shape(band, "contrast")]))
    return parts
  return build


def _cap(style: Style, back: bool) -> list[Part]:
  crown = _ellipse(0, 0.2, 0.64, 0.78, 180, 360, 24)
  parts: list[Part] = [("body", [Shape(crown, "fabric")])]
  parts.append(("trim", [_line(_ellipse(0, 0.2, 0.22, 0.78, 180, 360, 12), "outline"),
                         _line(_pts(0, -0.58, 0, 0.2), "outline")]))
  if back:
    parts.append(("trim", [Shape(_ellipse(0, 0.2, 0.16, 0.14, 180, 360, 10), "inner")]))
  else:
    brim = np.concatenate([_ellipse(0, 0.16, 0.7, 0.1, 180, 0, 13),
                           _ellipse(0, 0.16, 0.72, 0.34, 0, 180, 13)])
    parts.append(("trim", [Shape(brim, "rib")]))
    if "front_logo" in style.details:
      parts.append(("front_logo", _logo(0.0, -0.12, 0.14, round_badge=False)))
  if "crown_button" in style.details:
    parts.append(("crown_button", _buttons([0.0], [-0.57], 0.05)))
  return parts


def _beanie(style: Style, back: bool) -> list[Part]:
  dome = np.concatenate([_ellipse(0, 0.05, 0.58, 0.85, 180, 360, 24), _pts(0.6, 0.55, -0.6, 0.55)])
  cuff = _rect(-0.62, 0.08, 0.62, 0.55)
  ribs = [_line(_pts(x, 0.1, x, 0.53), "outline") for x in np.linspace(-0.5, 0.5, 11)]
  parts: list[Part] = [("body", [Shape(dome, "fabric")]),
                       ("trim", [Shape(cuff, "rib")] + ribs)]
  if "front_logo" in style.details and not back:
    parts.append(("front_logo", _logo(0.0, 0.31, 0.13, round_badge=False)))
  return parts


def _scarf(style: Style, back: bool) -> list[Part]:
  body = _pts(-0.3, -0.92, 0.3, -0.92, 0.34, 0.82, -0.34, 0.82)
  parts: list[Part] = [("body", [Shape(body, "fabric")]),
                       ("trim", [_line(_pts(-0.3, -0.6, 0.3, -0.6), "outline")])]
  if "fringe" in style.details:
    strands = [_line(_pts(x, 0.81, x * 1.02, 0.98), "rib", 0.022)
               for x in np.linspace(-0.31, 0.31, 12)]
    parts.append(("fringe", strands))
  if "corner_logo" in style.details and not back:
    parts.append(("corner_logo", _logo(0.18, 0.64, 0.07, round_badge=False)))
  return parts


# ---------------------------------------------------------------------------------------------
# The garment types.

_TEE = Torso(shoulder=0.42, neck=0.16, waist=(0.4, 0.0), hem=(0.41, 0.75))
_SHIRT = Torso(shoulder=0.42, neck=0.15, waist=(0.41, 0.0), hem=(0.42, 0.8))
_TANK = Torso(shoulder=0.4, neck=0.15, waist=(0.36, 0.0), hem=(0.39, 0.72))
_SWEATER = Torso(shoulder=0.45, neck=0.16, waist=(0.42, 0.0), hem=(0.42, 0.72), rib=True)
_HOODIE = Torso(shoulder=0.46, neck=0.16, waist=(0.44, 0.0), hem=(0.44, 0.72), rib=True)
_CARDIGAN = Torso(shoulder=0.43, neck=0.15, waist=(0.43, 0.0), hem=(0.44, 0.76), rib=True)
_MINI_DRESS = Torso(shoulder=0.33, neck=0.14, waist=(0.27, -0.1), hem=(0.54, 0.42),
                    sleeve_reach=0.24)
_MAXI_DRESS = Torso(shoulder=0.33, neck=0.14, waist=(0.27, -0.1), hem=(0.64, 1.0),
                    sleeve_reach=0.24)
_JACKET = Torso(shoulder=0.47, neck=0.17, waist=(0.46, 0.0), hem=(0.46, 0.64), rib=True)
_COAT = Torso(shoulder=0.46, neck=0.17, waist=(0.44, 0.05), hem=(0.54, 1.02))
_BLAZER = Torso(shoulder=0.46, neck=0.17, waist=(0.42, 0.05), hem=(0.46, 0.76))

_LOGO = ("chest_logo", "centre_logo", "")
_DRESS_GROUPS = (("waist_belt", ""), ("front_buttons", "", ""), ("chest_pocket", "", ""))
_JEANS_COLOURS = ("blue", "navy", "black", "grey")
_SHOE_COLOURS = ("black", "navy", "red", "green", "brown", "camel", "grey", "beige", "blue",
                 "burgundy", "pink")

GARMENTS: tuple[GarmentType, ...] = (
    GarmentType("t-shirt", "TOPS", "T-SHIRTS", ("t-shirt", "tee"), _torso_builder(_TEE),
                ("short", "long"), ("crew", "v-neck"), (("chest_pocket", ""), _LOGO)),
    GarmentType("shirt", "TOPS", "SHIRTS", ("shirt",), _torso_builder(_SHIRT), ("short", "long"),
                ("collar",), (("front_buttons",), ("chest_pocket", "")),
                ("solid", "striped", "checked", "floral", "polka-dot")),
    GarmentType("tank top", "TOPS", "TANK TOPS", ("tank top", "vest top"), _torso_builder(_TANK),
                ("sleeveless",), ("crew", "v-neck"), (_LOGO,)),
    GarmentType("polo", "TOPS", "POLOS", ("polo", "polo shirt"), _torso_builder(_TEE),
                ("short", "long"), ("collar",), (("placket_buttons",), ("chest_logo", "")),
                ("solid", "striped")),
    GarmentType("sweater", "SWEATERS", "CREWNECKS", ("sweater", "pullover"),
                _torso_builder(_SWEATER), ("long",), ("crew", "v-neck"), (_LOGO,),
                ("solid", "striped", "zigzag", "checked", "polka-dot")),
    GarmentType("hoodie", "SWEATERS", "HOODIES & ZIPUPS", ("hoodie", "pullover hoodie"),
                _torso_builder(_HOODIE), ("long",), ("hooded",),
                (("front_zip", "centre_logo", "chest_logo", ""), ("kangaroo_pocket", "")),
                ("solid", "striped", "checked")),
    GarmentType("cardigan", "SWEATERS", "CARDIGANS", ("cardigan",), _torso_builder(_CARDIGAN),
                ("long",), ("v-neck", "crew"), (("front_buttons",), ("hip_pockets", "")),
                ("solid", "striped", "zigzag", "polka-dot")),
    GarmentType("mini dress", "DRESSES", "SHORT DRESSES", ("mini dress", "dress"),
                _torso_builder(_MINI_DRESS), SLEEVES, ("crew", "v-neck", "collar"),
                _DRESS_GROUPS),
    GarmentType("maxi dress", "DRESSES", "LONG DRESSES", ("maxi dress", "dress"),
                _torso_builder(_MAXI_DRESS), SLEEVES, ("crew", "v-neck", "collar"),
                _DRESS_GROUPS),
    GarmentType("trousers", "PANTS", "TROUSERS", ("trousers", "pants"),
                _pants_builder(0.98, 0.42, 0.09),
                detail_groups=(("waist_belt", "waist_button"), ("front_pockets", ""),
                               ("fly_zip", "")),
                patterns=("solid", "checked", "striped")),
    GarmentType("jeans", "PANTS", "JEANS", ("jeans",), _pants_builder(0.98, 0.38, 0.1),
                detail_groups=(("waist_belt", "waist_button"), ("front_pockets",),
                               ("fly_zip", "")),
                patterns=("solid",), colours=_JEANS_COLOURS),
    GarmentType("shorts", "PANTS", "SHORTS", ("shorts",), _pants_builder(0.1, 0.5, 0.05),
                detail_groups=(("waist_belt", "waist_button", ""), ("front_pockets", "")),
                patterns=("solid", "striped", "checked", "floral")),
    GarmentType("mini skirt", "SKIRTS", "SHORT SKIRTS", ("mini skirt", "skirt"),
                _skirt_builder(0.2, 0.5),
                detail_groups=(("waist_belt", ""), ("front_buttons", "back_zip", ""),
                               ("front_pockets", ""))),
    GarmentType("midi skirt", "SKIRTS", "MIDI SKIRTS", ("midi skirt", "skirt"),
                _skirt_builder(0.9, 0.62),
                detail_groups=(("waist_belt", ""), ("front_buttons", "back_zip", ""),
                               ("front_pockets", ""))),
    GarmentType("jacket", "JACKETS & COATS", "JACKETS", ("jacket", "bomber jacket"),
                _torso_builder(_JACKET), ("long",), ("collar", "hooded", "crew"),
                (("front_zip", "front_buttons"), ("hip_pockets", ""), ("chest_logo", "")),
                ("solid", "checked")),
    GarmentType("coat", "JACKETS & COATS", "COATS", ("coat", "overcoat"), _torso_builder(_COAT),
                ("long",), ("lapel", "hooded"),
                (("front_buttons",), ("waist_belt", ""), ("hip_pockets", "")),
                ("solid", "checked")),
    GarmentType("blazer", "JACKETS & COATS", "BLAZERS", ("blazer",), _torso_builder(_BLAZER),
                ("long",), ("lapel",), (("front_buttons",), ("hip_pockets", "")),
                ("solid", "checked", "striped")),
    GarmentType("tote bag", "BAGS", "TOTE BAGS", ("tote bag", "tote"), _tote,
                detail_groups=(("front_pocket", ""), ("front_logo", ""), ("top_zip", "")),
                patterns=("solid", "striped", "checked", "floral", "polka-dot")),
    GarmentType("backpack", "BAGS", "BACKPACKS", ("backpack",), _backpack,
                detail_groups=(("front_pocket", ""), ("top_zip",), ("front_logo", "")),
                patterns=("solid", "checked")),
    GarmentType("shoulder bag", "BAGS", "SHOULDER BAGS", ("shoulder bag", "bag"), _shoulder_bag,
                detail_groups=(("flap_logo", ""), ("back_zip_pocket", "")),
                patterns=("solid", "checked", "polka-dot")),
    GarmentType("sneakers", "SHOES", "SNEAKERS", ("sneakers", "trainers"), _shoe(boot=False),
                detail_groups=(("laces",), ("side_logo", "")),
                patterns=("solid",), colours=_SHOE_COLOURS, profile=True),
    GarmentType("boots", "SHOES", "BOOTS", ("boots", "ankle boots"), _shoe(boot=True),
                detail_groups=(("laces", "side_zip"),),
                patterns=("solid",), colours=_SHOE_COLOURS, profile=True),
    GarmentType("cap", "HATS", "CAPS", ("cap", "baseball cap"), _cap,
                detail_groups=(("front_logo", ""), ("crown_button", "")),
                patterns=("solid", "checked", "striped")),
    GarmentType("beanie", "HATS", "BEANIES", ("beanie",), _beanie,
                detail_groups=(("front_logo", ""),), patterns=("solid", "striped", "zigzag")),
    GarmentType("scarf", "SCARVES", "SCARVES", ("scarf",), _scarf,
                detail_groups=(("fringe", ""), ("corner_logo", "")),
                patterns=("solid", "striped", "checked", "zigzag", "floral")),
)
GARMENTS_BY_KEY: dict[str, GarmentType] = {g.key: g for g in GARMENTS}


def pick(rng: np.random.Generator, options: Sequence[T]) -> T:
  """A uniformly drawn option."""
  return options[int(rng.integers(len(options)))]


def sample_style(rng: np.random.Generator) -> Style:
  """Draws a product: a garment type and its attributes."""
  garment = GARMENTS[int(rng.integers(len(GARMENTS)))]
  weights = np.array([SOLID_WEIGHT if p == "solid" else 1.0 for p in garment.patterns])
  pattern = garment.patterns[int(rng.choice(len(garment.patterns), p=weights / weights.sum()))]
  colour = pick(rng, garment.colours)
  secondary = ""
  if pattern != "solid":
    dark = np.mean(COLOURS[colour]) < 120
    secondary = pick(rng, ("white", "cream") if dark else ("black", "navy", "white"))
  details = tuple(d for d in (pick(rng, group) for group in garment.detail_groups) if d)
  return Style(garment=garment.key, colour=colour, pattern=pattern, secondary=secondary,
               sleeve=pick(rng, garment.sleeves or ("",)),
               neckline=pick(rng, garment.necklines or ("",)),
               details=details, trim=pick(rng, tuple(TRIM_COLOURS)),
               pattern_period=float(rng.uniform(0.1, 0.16)),
               pattern_phase=(float(rng.uniform(0, 1)), float(rng.uniform(0, 1))))


# ---------------------------------------------------------------------------------------------
# Rendering.


@dataclasses.dataclass(frozen=True)
class _View:
  """How a view shows the product."""
  back: bool
  mirror: bool
  squeeze: float  # horizontal compression (a turned product)
  zoom: float
  tilt: float  # degrees of extra rotation range


_VIEWS = {1: _View(False, False, 1.0, 1.0, 2.5), 2: _View(True, False, 1.0, 1.0, 2.5),
          3: _View(False, True, 0.86, 0.97, 6.0), 4: _View(False, False, 1.0, 1.12, 2.0)}


def _palette(style: Style) -> dict[str, np.ndarray]:
  """Flat colours of the roles, derived from the product colours."""
  base = np.array(COLOURS[style.colour], np.float64)
  dark = base.mean() < 70
  contrast = SECONDARY_COLOURS[style.secondary] if style.secondary else (
      (240, 238, 232) if base.mean() < 140 else (30, 30, 32))
  roles = {
      "fabric": base, "rib": base * 0.84 + (18 if dark else 0), "collar": base * 0.94,
      "pocket": base * 0.9 + (10 if dark else 0), "shade": base * 0.55,
      "outline": base + 55 if dark else base * 0.5, "inner": (44, 42, 48),
      "contrast": contrast, "logo_mark": base, "button": base * 0.5 if not dark else (96, 96, 100),
      "metal": (168, 168, 174), "gold": (198, 162, 84), "trim": TRIM_COLOURS[style.trim],
      "sole": TRIM_COLOURS[style.trim] if style.trim != "tan" else (60, 56, 54),
      "lace": contrast, "secondary": SECONDARY_COLOURS.get(style.secondary, contrast),
  }
  return {role: np.clip(np.asarray(value, np.float64), 0, 255) for role, value in roles.items()}


def _fit(parts: list[Part], view: _View, size: int, rng: np.random.Generator
         ) -> tuple[np.ndarray, np.ndarray]:
  """The affine map unit -> pixel (matrix, offset) placing the product in the frame."""
  points = np.concatenate([s.points for _, shapes in parts for s in shapes])
  centre = (points.min(axis=0) + points.max(axis=0)) / 2
  angle = np.radians(rng.uniform(-view.tilt, view.tilt))
  rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
  flip = np.diag([(-1.0 if view.mirror else 1.0) * view.squeeze, 1.0])
  linear = rotation @ flip
  extent = np.abs((points - centre) @ linear.T).max()
  scale = size * 0.43 * view.zoom * rng.uniform(0.88, 1.0) / extent
  margin = size * 0.03
  scale = min(scale, (size / 2 - margin) / extent)
  shift = rng.uniform(-1, 1, 2) * max(0.0, size / 2 - margin - scale * extent)
  matrix = scale * linear
  offset = size / 2 + shift - centre @ matrix.T
  return matrix, offset


@dataclasses.dataclass(frozen=True)
class _Placed:
  """A shape mapped to pixels: fixed-point points (4 fractional bits) and line thickness."""
  part: int  # index into the parts list
  shape: Shape
  points: np.ndarray
  thickness: int


def _place(parts: list[Part], matrix: np.ndarray, offset: np.ndarray) -> list[_Placed]:
  scale = float(np.sqrt(abs(np.linalg.det(matrix))))
  return [_Placed(index, shape, np.round((shape.points @ matrix.T + offset) * 16).astype(np.int32),
                  max(1, int(round(shape.width * scale))))
          for index, (_, shapes) in enumerate(parts) for shape in shapes]


@functools.lru_cache(maxsize=4)
def _noise_texture(size: int) -> np.ndarray:
  """A fixed (2S, 2S, 3) unit Gaussian texture; images crop it at random offsets (fast, seeded)."""
  return np.random.default_rng(0).standard_normal((2 * size, 2 * size, 3), dtype=np.float32)


def _noise(rng: np.random.Generator, size: int, height: int, width: int) -> np.ndarray:
  """A (height, width, 3) crop of the noise texture at a random offset."""
  y, x = rng.integers(0, size, 2)
  return _noise_texture(size)[y:y + height, x:x + width]


def _coverage(placed: list[_Placed], size: int) -> np.ndarray:
  """Anti-aliased product coverage (uint8, 255 = product)."""
  alpha = np.zeros((size, size), np.uint8)
  for p in placed:
    if p.shape.fill:  # One call per polygon: a joint call would cut out their overlaps.
      cv2.fillPoly(alpha, [p.points], 255, cv2.LINE_AA, 4)
    else:
      cv2.polylines(alpha, [p.points], p.shape.closed, 255, p.thickness, cv2.LINE_AA, 4)
  return alpha


def _backdrop(rng: np.random.Generator, alpha: np.ndarray) -> np.ndarray:
  """A light studio background with a vertical light falloff, grain and a faint soft shadow."""
  size = alpha.shape[0]
  level = rng.uniform(230, 246)
  rows = (level + rng.uniform(-3, 3, 3)[None, :] +
          np.linspace(-1, 1, size)[:, None] * rng.uniform(2, 7)).astype(np.float32)
  base = cv2.resize(rows[:, None, :], (size, size), interpolation=cv2.INTER_NEAREST)
  shift, k = max(1, size // 64), 2 * (size // 32) + 1
  cast = np.zeros(alpha.shape, np.float32)
  cast[shift:, shift:] = alpha[:-shift, :-shift]
  shade = cv2.GaussianBlur(cast, (k, k), 0) * np.float32(level * 0.06 / 255)
  image = cv2.scaleAdd(_noise(rng, size, size, size), 1.4, base)
  return cv2.subtract(image, cv2.cvtColor(shade, cv2.COLOR_GRAY2RGB))


@functools.lru_cache(maxsize=4)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
  ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
  return xs, ys


def _band(d: np.ndarray, px: float) -> np.ndarray:
  """Anti-aliased indicator of d > 0 (d in units, px pixels per unit)."""
  return np.clip(d * px + 0.5, 0.0, 1.0)


Layer = tuple[np.ndarray, np.ndarray]  # (RGB colour, (H, W) weight in [0, 1])


def _pattern(style: Style, palette: dict[str, np.ndarray], u: np.ndarray, v: np.ndarray,
             px: float) -> list[Layer]:
  """The colour layers painted over the base colour at unit coordinates (u, v)."""
  second = palette["secondary"]
  p = style.pattern_period
  u = u + np.float32(style.pattern_phase[0] * p * 2)
  v = v + np.float32(style.pattern_phase[1] * p * 2)
  if style.pattern == "solid":
    return []
  if style.pattern == "striped":
    return [(second, _band(np.abs(np.mod(v / p, 1.0) - 0.5) * p - p * 0.22, px))]
  if style.pattern == "zigzag":
    zig = np.abs(np.mod(u / (p * 1.4), 1.0) - 0.5) * (p * 0.9)
    return [(second, _band(np.abs(np.mod((v + zig) / p, 1.0) - 0.5) * p - p * 0.25, px))]
  if style.pattern == "checked":
    q = p * 1.6
    a = _band(np.abs(np.mod(u / q, 1.0) - 0.5) * q - q * 0.25, px)
    b = _band(np.abs(np.mod(v / q, 1.0) - 0.5) * q - q * 0.25, px)
    return [(second, (a + b) * 0.5)]
  q = p * (1.3 if style.pattern == "polka-dot" else 2.4)
  row = np.floor(v / q)
  du = (np.mod(u / q + 0.5 * np.mod(row, 2), 1.0) - 0.5) * q
  dv = (np.mod(v / q, 1.0) - 0.5) * q
  if style.pattern == "polka-dot":
    return [(second, _band(q * 0.22 - np.sqrt(du * du + dv * dv), px))]
  return _floral(second, du, dv, q, px)


def _floral(petal: np.ndarray, du: np.ndarray, dv: np.ndarray, q: float, px: float
            ) -> list[Layer]:
  """Five-petal flowers, from the offsets (du, dv) to the nearest lattice point of period q."""
  nearest = np.full_like(du, np.inf)
  for k in range(5):
    angle = 2 * np.pi * k / 5
    cx, cy = 0.2 * q * np.sin(angle), -0.2 * q * np.cos(angle)
    np.minimum(nearest, np.hypot(du - np.float32(cx), dv - np.float32(cy)), out=nearest)
  centre = np.asarray(_FLOWER_CENTRE, np.float64)
  return [(petal, _band(0.13 * q - nearest, px)), (centre, _band(0.08 * q - np.hypot(du, dv), px))]


def _box(points: np.ndarray, pad: float, size: int) -> Box:
  """The [x1, y1, x2, y2) box of the pixels whose centres lie within `pad` of fixed-point points."""
  low = np.ceil(points.min(axis=0) / 16.0 - pad).astype(int)
  high = np.floor(points.max(axis=0) / 16.0 + pad).astype(int) + 1
  x1, y1 = (min(max(int(v), 0), size) for v in low)
  x2, y2 = (min(max(int(v), 0), size) for v in high)
  return x1, y1, x2, y2


def _union(boxes: Sequence[Box]) -> Box:
  return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes),
          max(b[3] for b in boxes))


def _draw_fabric(image: np.ndarray, placed: list[_Placed], style: Style,
                 palette: dict[str, np.ndarray], matrix: np.ndarray, offset: np.ndarray,
                 rng: np.random.Generator) -> None:
  """Paints the union of the fabric polygons with the shaded, grained pattern."""
  size = image.shape[0]
  coverage = _coverage([p for p in placed if p.shape.role == "fabric"], size)
  ys, xs = np.nonzero(coverage.any(axis=1))[0], np.nonzero(coverage.any(axis=0))[0]
  if ys.size == 0:
    return
  y1, y2, x1, x2 = ys[0], ys[-1] + 1, xs[0], xs[-1] + 1
  grid_x, grid_y = _grid(size)
  inverse = np.linalg.inv(matrix).astype(np.float32)
  px = grid_x[y1:y2, x1:x2] - np.float32(offset[0])
  py = grid_y[y1:y2, x1:x2] - np.float32(offset[1])
  u = inverse[0, 0] * px + inverse[0, 1] * py
  v = inverse[1, 0] * px + inverse[1, 1] * py
  layers = _pattern(style, palette, u, v, float(np.sqrt(abs(np.linalg.det(matrix)))))
  light = 1.0 - 0.05 * (0.7 * u + 0.3 * v)
  light += 0.025 * np.sin(u * 9.0 + v * 2.0)
  # Cloth turns away from the light at the silhouette: darker edges, as in studio photos (this
  # also keeps white stripes apart from a white background).
  inside = cv2.distanceTransform((coverage >= 128).view(np.uint8), cv2.DIST_L2, 3)[y1:y2, x1:x2]
  light -= np.float32(EDGE_SHADE) * np.maximum(0.0, 1.0 - inside * np.float32(256 / (8.0 * size)))
  channels = []
  for c in range(3):
    channel = np.full(u.shape, palette["fabric"][c], np.float32)
    for colour, weight in layers:
      channel += weight * (np.float32(colour[c]) - channel)
    channels.append(channel * light)
  cloth = cv2.scaleAdd(_noise(rng, size, y2 - y1, x2 - x1), 2.0, cv2.merge(channels))
  a = coverage[y1:y2, x1:x2].astype(np.float32) * np.float32(1 / 255)
  image[y1:y2, x1:x2] = cv2.blendLinear(image[y1:y2, x1:x2], cloth, 1.0 - a, a)


def _draw_flat(canvas: np.ndarray, placed: list[_Placed], palette: dict[str, np.ndarray]
               ) -> dict[int, list[Box]]:
  """Draws outlines and flat-coloured shapes in order; returns the shape boxes of each part."""
  outline = tuple(float(c) for c in palette["outline"])
  size = canvas.shape[0]
  boxes: dict[int, list[Box]] = {}
  for p in placed:
    colour = tuple(float(c) for c in palette[p.shape.role])
    if p.shape.fill:
      if p.shape.role != "fabric":
        cv2.fillPoly(canvas, [p.points], colour, cv2.LINE_AA, 4)
      cv2.polylines(canvas, [p.points], True, outline, 1, cv2.LINE_AA, 4)
    else:
      cv2.polylines(canvas, [p.points], p.shape.closed, colour, p.thickness, cv2.LINE_AA, 4)
    pad = 0.5 if p.shape.fill else p.thickness / 2 + 0.5  # + the anti-aliased fringe
    boxes.setdefault(p.part, []).append(_box(p.points, pad, size))
  return boxes


def render(style: Style, view: int, rng: np.random.Generator, size: int = 256) -> Rendering:
  """Draws view `view` (1..4) of a product; `rng` jitters the placement and draws the grain."""
  garment = GARMENTS_BY_KEY[style.garment]
  spec = _VIEWS[view]
  if garment.profile and spec.back:
    spec = dataclasses.replace(spec, mirror=not spec.mirror)
  parts = garment.build(style, spec.back)
  matrix, offset = _fit(parts, spec, size, rng)
  placed = _place(parts, matrix, offset)
  palette = _palette(style)
  alpha = _coverage(placed, size)
  image = _backdrop(rng, alpha)
  _draw_fabric(image, placed, style, palette, matrix, offset, rng)
  canvas = cv2.convertScaleAbs(image)
  boxes = _draw_flat(canvas, placed, palette)
  regions: dict[str, list[Box]] = {}
  for index, (region, _) in enumerate(parts):
    if region != "trim":
      regions.setdefault(region, []).append(_union(boxes[index]))
  return Rendering(canvas, alpha >= 128, regions)
