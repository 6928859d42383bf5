"""Synthetic face identities: stylised frontal faces, one random parameter vector per identity.

No face-identity set ships with any package available offline, so face recognition trains and tests on these.
An identity (``FaceParams``) is drawn from continuous distributions (face shape, jaw, skin tone, hair colour
and one of six hair styles, eye spacing/size/height/tilt, iris colour, brows, nose, mouth, ears) plus a few
discrete traits (beard or moustache, glasses, a mole): hundreds of identities are distinguishable, and
neighbours in parameter space look alike. Each image of an identity draws new nuisances (``Nuisance``):
in-plane rotation (+-15 deg), scale (+-10 %), shift, a yaw imitation (features slide over a cylinder, the
outline narrows), expression (smile, open mouth, blink), lighting (brightness, contrast, a directional
gradient, colour cast), a portrait background, clothing colour, sometimes an occluder (a bar, sunglasses,
a cap), noise and blur.

Shapes are polygons in face units, transformed once (yaw, then rotation/scale/shift) and drawn with PIL at
twice the output size, then box-filtered down (antialiasing). Image ``k`` of identity ``i`` is a pure function
of ``(seed, i, k, size)``: same seed, same bytes, whatever the number of worker processes. Identities are
named ``id_0007``; image ``k`` (1-based) is ``id_0007/id_0007_0001.png``, LFW's naming, which ``read_pairs``
resolves.

Usage::

    from mmkit.data.synthetic_faces import identity_arrays, make_identities

    summary = make_identities(Path("faces"), n_identities=300, images_per_identity=12, size=64, seed=0)
    # faces/train/id_XXXX/*.png, faces/test/id_XXXX/*.png (other identities), faces/pairs.txt, README.txt
    pairs = read_pairs("faces/pairs.txt", root="faces/test")  # mmkit.data.formats.pairs
    images, labels, names = identity_arrays(20, 5, size=64, seed=0)  # uint8 [100, 64, 64, 3], int64 [100]
"""

from __future__ import annotations

import logging
import math
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from mmkit.data.formats.pairs import image_name, sample_pairs, write_pairs
from mmkit.data.output_folder import claim_output_folder, staged_output
from mmkit.errors import MMKitError

logger = logging.getLogger(__name__)

HAIR_STYLES = ("bald", "short", "fringe", "long", "bob", "curly")
_HAIR_STYLE_P = (0.10, 0.30, 0.15, 0.20, 0.13, 0.12)
MIN_SIZE, MAX_SIZE = 32, 512
README_MARKER = "mmkit synthetic face identities"
_SUPERSAMPLE = 2
_STREAM_IDENTITY, _STREAM_IMAGE, _STREAM_SPLIT, _STREAM_PAIRS = 1, 2, 3, 4
_FACE_CENTRE = (0.5, 0.53)  # in canvas units: room above for hair, shoulders at the bottom

_SKIN = np.array([(255, 226, 200), (240, 196, 160), (224, 172, 128), (196, 136, 96), (160, 104, 68),
                  (116, 76, 50), (80, 54, 38)], np.float32)  # fmt: skip
_HAIR = np.array([(22, 18, 16), (58, 40, 28), (104, 72, 44), (158, 118, 72), (222, 192, 128)], np.float32)
_RED_HAIR = np.array([(130, 52, 26), (206, 110, 56)], np.float32)
_GREY_HAIR = np.array([(110, 108, 106), (228, 226, 220)], np.float32)
_IRIS = np.array(
    [(52, 32, 20), (104, 66, 34), (136, 108, 52), (78, 118, 66), (66, 108, 168), (128, 146, 164)], np.float32
)
_FRAMES = np.array([(20, 20, 22), (96, 58, 30), (150, 150, 156), (190, 160, 70)], np.float32)

Color = tuple[int, int, int]


def _ramp_color(ramp: np.ndarray, t: float, rng: np.random.Generator, jitter: float) -> Color:
    """A colour at position ``t`` (0..1) along a ramp of anchor colours, plus per-channel jitter."""
    pos = t * (len(ramp) - 1)
    k = min(int(pos), len(ramp) - 2)
    c = ramp[k] + (ramp[k + 1] - ramp[k]) * (pos - k) + rng.normal(0, jitter, 3)
    return _color(c)


def _color(c) -> Color:
    return tuple(int(v) for v in np.clip(np.rint(c), 0, 255))  # type: ignore[return-value]


def _mix(a: Color, b: Color, t: float) -> Color:
    return _color(np.asarray(a, np.float32) * (1 - t) + np.asarray(b, np.float32) * t)


@dataclass(frozen=True)
class FaceParams:
    """One identity. Lengths are fractions of the canvas (face_h) or of the face's half width ``a`` / half
    height ``b``; angles in radians; colours RGB."""

    face_h: float  # b, half height of the face
    face_ratio: float  # a / b
    jaw: float  # 0 round .. 1 square lower face
    chin: float  # lower half height factor
    skin: Color
    hair_style: str
    hair_color: Color
    hair_volume: float  # outer hair radius / head radius
    hairline: float  # forehead top above the centre, in b
    hair_part: float  # -1..1, moves the hairline's peak
    hair_length: float  # long styles: hair ends this far below the centre, in b
    eye_spacing: float  # eye centres at +-eye_spacing * a
    eye_y: float  # in b (negative: above the centre)
    eye_w: float  # eye half width, in a
    eye_open: float  # eye half height / half width
    eye_tilt: float
    iris_color: Color
    iris_size: float  # iris radius / eye half width
    brow_thick: float  # in b
    brow_angle: float
    brow_gap: float  # brow above the eye centre, in b
    brow_len: float  # brow half length / eye half width
    brow_arch: float  # in b
    nose_len: float  # in b, from the eye line down
    nose_w: float  # in a
    mouth_y: float  # in b
    mouth_w: float  # half width, in a
    lip_thick: float  # in b
    lip_color: Color
    ear_size: float  # half height, in b
    shoulders: float  # half width, canvas units
    facial_hair: str  # none | moustache | goatee | beard | full
    beard_density: float
    glasses: str  # none | round | square
    glasses_color: Color
    mole: tuple[float, float] | None  # position in (a, b) units


def sample_identity(rng: np.random.Generator) -> FaceParams:
    """Draw one identity's parameters (continuous where it can be, so that close identities exist)."""
    u = rng.uniform
    skin = _ramp_color(_SKIN, rng.beta(1.6, 1.6), rng, 6)
    family = rng.random()
    if family < 0.82:
        hair = _ramp_color(_HAIR, rng.beta(1.2, 2.0), rng, 6)
    else:
        hair = _ramp_color(_RED_HAIR if family < 0.9 else _GREY_HAIR, rng.random(), rng, 8)
    style = str(rng.choice(HAIR_STYLES, p=_HAIR_STYLE_P))
    beard = rng.random()
    facial_hair = "none" if beard < 0.72 else str(rng.choice(["moustache", "goatee", "beard", "full"]))
    return FaceParams(
        face_h=u(0.26, 0.31), face_ratio=u(0.7, 0.88), jaw=u(0, 1), chin=u(0.95, 1.1), skin=skin,
        hair_style=style, hair_color=hair, hair_volume=u(1.04, 1.14) if style != "curly" else u(1.2, 1.36),
        hairline=u(0.5, 0.75) if style != "fringe" else u(0.22, 0.4), hair_part=u(-1, 1),
        hair_length=u(0.9, 1.5) if style == "long" else u(0.25, 0.55),
        eye_spacing=u(0.32, 0.46), eye_y=u(-0.2, -0.04), eye_w=u(0.15, 0.22), eye_open=u(0.38, 0.62),
        eye_tilt=u(-0.15, 0.15), iris_color=_ramp_color(_IRIS, rng.random(), rng, 8), iris_size=u(0.38, 0.52),
        brow_thick=u(0.025, 0.065), brow_angle=u(-0.25, 0.25), brow_gap=u(0.13, 0.21), brow_len=u(0.95, 1.45),
        brow_arch=u(0.0, 0.05), nose_len=u(0.25, 0.42), nose_w=u(0.14, 0.26), mouth_y=u(0.42, 0.6),
        mouth_w=u(0.28, 0.44), lip_thick=u(0.03, 0.07), lip_color=_mix(skin, (176, 64, 76), u(0.2, 0.55)),
        ear_size=u(0.15, 0.22), shoulders=u(0.36, 0.46), facial_hair=facial_hair, beard_density=u(0.55, 1.0),
        glasses="none" if rng.random() < 0.84 else str(rng.choice(["round", "square"])),
        glasses_color=_ramp_color(_FRAMES, rng.random(), rng, 10),
        mole=(u(-0.6, 0.6), u(-0.1, 0.6)) if rng.random() < 0.25 else None,
    )  # fmt: skip


@dataclass(frozen=True)
class Nuisance:
    """What changes between two images of one identity."""

    angle: float  # in-plane rotation, degrees
    scale: float
    shift: tuple[float, float]  # canvas units
    yaw: float  # radians
    smile: float
    mouth_open: float
    blink: bool
    brightness: float
    contrast: float
    gradient: float  # strength of a directional light gradient
    gradient_angle: float
    cast: tuple[float, float, float]  # per-channel gain
    clothes: Color
    occluder: str  # none | bar | sunglasses | hat
    occluder_color: Color
    bar: tuple[float, float, float, float]  # x0, y0, x1, y1 in canvas units (bar occluder)
    hat_level: float  # cap's lower edge above the face centre, in b
    noise: float  # Gaussian noise sigma, 0..255 scale
    blur: float  # Gaussian blur radius in output pixels (0: none)
    texture_seed: int  # background texture and noise pixels


def sample_nuisance(rng: np.random.Generator) -> Nuisance:
    """Draw one image's nuisances (a fixed number of draws, so each field's stream stays put)."""
    u = rng.uniform
    occ, bar_cx, bar_cy, bar_w, bar_h, bar_turn = rng.random(6)
    bar_w, bar_h = 0.2 + 0.5 * bar_w, 0.08 + 0.16 * bar_h
    if bar_turn < 0.4:
        bar_w, bar_h = bar_h, bar_w
    cx, cy = 0.32 + 0.36 * bar_cx, 0.3 + 0.45 * bar_cy
    blur = u(0.3, 1.0)
    return Nuisance(
        angle=u(-15, 15), scale=u(0.9, 1.1), shift=(u(-0.04, 0.04), u(-0.04, 0.04)), yaw=u(-0.3, 0.3),
        smile=u(-0.3, 1.0), mouth_open=max(0.0, u(-0.8, 0.6)), blink=bool(rng.random() < 0.05),
        brightness=u(-30, 30), contrast=u(0.75, 1.25), gradient=u(0, 0.35), gradient_angle=u(0, 2 * math.pi),
        cast=tuple(u(0.9, 1.1, 3)), clothes=_color(rng.uniform(15, 240, 3)),
        occluder="none" if occ < 0.73 else "bar" if occ < 0.85 else "sunglasses" if occ < 0.93 else "hat",
        occluder_color=_color(rng.uniform(0, 255, 3)),
        bar=(cx - bar_w / 2, cy - bar_h / 2, cx + bar_w / 2, cy + bar_h / 2), hat_level=u(0.35, 0.6),
        noise=u(0, 8), blur=blur if rng.random() < 0.3 else 0.0, texture_seed=int(rng.integers(2**31)),
    )  # fmt: skip


# ------------------------------------------------------------------------------------------------- sketch

_BODY, _FLAT, _SURFACE = 0, 1, 2  # how a shape follows the yaw: not at all, compressed, over a cylinder


@lru_cache(maxsize=16)
def _unit_circle(n: int) -> np.ndarray:
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    return np.stack([np.cos(t), np.sin(t)], 1)


def _ellipse(cx: float, cy: float, rx: float, ry: float, n: int = 24) -> np.ndarray:
    return _unit_circle(n) * (rx, ry) + (cx, cy)


def _rotate(points: np.ndarray, angle: float, cx: float = 0.0, cy: float = 0.0) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    d = points - (cx, cy)
    return np.stack([cx + c * d[:, 0] - s * d[:, 1], cy + s * d[:, 0] + c * d[:, 1]], 1)


class _Sketch:
    """Shapes in face units (x right, y down, face centre at 0), drawn in order once transformed."""

    def __init__(self) -> None:
        self.shapes: list[tuple[np.ndarray, int, float, Color, float]] = []

    def fill(self, points: np.ndarray, color: Color, mode: int = _SURFACE, lift: float = 0.0) -> None:
        self.shapes.append((np.asarray(points, np.float64), mode, lift, color, 0.0))

    def line(self, points: np.ndarray, color: Color, width: float, mode: int = _SURFACE) -> None:
        self.shapes.append((np.asarray(points, np.float64), mode, 0.0, color, width))


def _band(x: np.ndarray, top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """The closed polygon between two curves over the same x (along ``top``, back along ``bottom``)."""
    return np.vstack([np.stack([x, top], 1), np.stack([x[::-1], bottom[::-1]], 1)])


def _face_outline(a: float, b: float, jaw: float, chin: float, n: int = 48) -> np.ndarray:
    """Upper half an ellipse; the lower half a superellipse (exponent 2 .. 5 with ``jaw``), ``chin`` long."""
    c, s = _unit_circle(n).T
    p = 2 + 3 * jaw
    lower = s > 0
    x = np.where(lower, np.sign(c) * np.abs(c) ** (2 / p), c) * a
    y = np.where(lower, np.abs(s) ** (2 / p) * chin, s) * b
    return np.stack([x, y], 1)


def _hair(sk: _Sketch, p: FaceParams, a: float, b: float, front: bool) -> None:
    """The hair behind the head (``front=False``) or over the forehead and sides."""
    style, color, vol = p.hair_style, p.hair_color, p.hair_volume
    if style == "bald":
        if front:  # a horseshoe of short hair above the ears
            for side in (-1, 1):
                patch = [
                    [0.9 * a, -0.3 * b],
                    [1.04 * a, -0.25 * b],
                    [1.02 * a, 0.05 * b],
                    [0.94 * a, 0.05 * b],
                ]
                sk.fill(np.asarray(patch) * (side, 1), color, _FLAT)
        return
    if not front:
        if style in ("long", "bob"):
            end = p.hair_length * b
            top = _ellipse(0, 0, a * vol * 1.05, b * vol, 25)[12:25]  # left, over the top, to the right
            sk.fill(np.vstack([top, [[a * vol * 1.12, end], [-a * vol * 1.12, end]]]), color, _FLAT)
        elif style == "curly":
            sk.fill(_ellipse(0, -0.12 * b, a * vol * 1.08, b * vol * 0.95, 32), color, _FLAT)
        return
    t = np.linspace(0, math.pi, 25)
    wobble = 1 + (0.06 * np.sin(11 * t + 3 * p.hair_part) if style == "curly" else 0)
    outer = np.stack([a * vol * np.cos(t) * wobble, -b * vol * np.sin(t) * wobble], 1)  # right, over, left
    temple, side = -0.08 * b, 0.95 * a
    low = {"long": p.hair_length * b, "bob": p.hair_length * b, "curly": 0.05 * b}.get(style)
    x = np.linspace(-1, 1, 21)
    peak = x - 0.35 * p.hair_part
    dome = np.clip(1 - np.abs(peak) ** (6 if style == "fringe" else 2.2), 0, 1) ** 0.5
    inner_y = temple + (-p.hairline * b - temple) * dome
    if style == "fringe":
        inner_y = inner_y + 0.05 * b * (np.arange(21) % 2)  # jagged bangs
    inner = np.stack([x * side * 0.92, inner_y], 1)  # left to right
    if low is None:
        sk.fill(np.vstack([outer, [[-side, temple]], inner, [[side, temple]]]), color)
    else:  # locks down the sides of the face
        left, right = [[-a * vol * 1.1, low], [-0.86 * a, low]], [[0.86 * a, low], [a * vol * 1.1, low]]
        sk.fill(np.vstack([outer, left, inner, right]), color)


def _eye(sk: _Sketch, p: FaceParams, cx: float, cy: float, w: float, open_: float, tilt: float) -> None:
    """Almond white, an iris and pupil clipped to the lids, and a lash line."""
    h = w * open_
    x = np.linspace(-w, w, 13)
    lid = np.sqrt(np.clip(1 - (x / w) ** 2, 0, 1))
    upper, lower = -h * lid, 0.75 * h * lid
    white = _band(x, upper, lower)
    sk.fill(_rotate(white + (cx, cy), tilt, cx, cy), (236, 234, 228))
    if open_ > 0.15:
        for radius, color in ((p.iris_size * w, p.iris_color), (0.45 * p.iris_size * w, (14, 12, 12))):
            disc = _ellipse(0, 0, radius, radius, 16)
            bound = np.sqrt(np.clip(1 - (disc[:, 0] / w) ** 2, 0, 1)) * h
            disc[:, 1] = np.clip(disc[:, 1], -bound, 0.75 * bound)
            sk.fill(_rotate(disc + (cx, cy), tilt, cx, cy), color)
    sk.line(_rotate(np.stack([x, upper], 1) + (cx, cy), tilt, cx, cy), (30, 22, 20), 0.008)


def _sketch_face(p: FaceParams, nz: Nuisance) -> _Sketch:
    sk = _Sketch()
    b = p.face_h
    a = b * p.face_ratio
    skin, shade = p.skin, _mix(p.skin, (40, 20, 10), 0.2)
    # body: clothes, long hair behind, neck
    ys, ws = 1.3 * b, p.shoulders
    clothes = [[-ws, 0.7], [-ws, ys + 0.07], [-0.8 * ws, ys], [0.8 * ws, ys], [ws, ys + 0.07], [ws, 0.7]]
    sk.fill(clothes, nz.clothes, _BODY)
    _hair(sk, p, a, b, front=False)
    neck = np.array([[-1, 0.4 * b], [1, 0.4 * b], [1, ys + 0.03], [-1, ys + 0.03]]) * (0.42 * a, 1)
    sk.fill(neck, shade, _BODY)
    ear_y = p.eye_y * b + 0.12 * b
    for side in (-1, 1):
        sk.fill(_ellipse(side * 0.97 * a, ear_y, 0.45 * p.ear_size * b, p.ear_size * b, 16), shade, _FLAT)
    sk.fill(_face_outline(a, b, p.jaw, p.chin), skin)
    # facial hair
    beard_color = _mix(skin, p.hair_color, p.beard_density)
    my, mw = p.mouth_y * b, p.mouth_w * a
    if p.facial_hair in ("beard", "full"):
        outline = _face_outline(a * 1.01, b, p.jaw, p.chin * 1.02)[2:23]  # cheek, under the chin, cheek
        inner = _ellipse(0, my - 0.02 * b, mw * 1.25, 0.22 * b, 24)[1:12][::-1]
        sk.fill(np.vstack([outline, inner]), beard_color)
    if p.facial_hair == "goatee":
        sk.fill(_ellipse(0, my + 0.28 * b, 0.45 * mw, 0.2 * b, 16), beard_color)
    if p.facial_hair in ("moustache", "full"):
        shape = [[-1.1, 0.02], [-0.5, -0.13], [0.5, -0.13], [1.1, 0.02], [0, -0.05]]
        sk.fill(np.asarray(shape) * (mw, b) + (0, my), beard_color)
    # nose (a shadowed ridge and nostrils, raised off the cylinder for the yaw)
    ny, nw = (p.eye_y + p.nose_len) * b, p.nose_w * a
    ridge = [[0.1, p.eye_y + 0.05 - ny / b], [0.35, -0.02], [0.5, 0.04], [0.0, 0.06], [0.12, -0.02]]
    sk.fill(np.asarray(ridge) * (nw, b) + (0, ny), shade, lift=0.25 * nw)
    nostril = _mix(skin, (0, 0, 0), 0.45)
    for side in (-1, 1):
        sk.fill(_ellipse(side * 0.4 * nw, ny + 0.045 * b, 0.16 * nw, 0.05 * nw, 12), nostril, lift=0.15 * nw)
    # mouth: lips around a centre line that curves up with a smile, dark inside when open
    x = np.linspace(-1, 1, 15)
    centre = my - nz.smile * 0.05 * b * x**2
    body = 1 - x**2
    gap = nz.mouth_open * 0.08 * b * body
    upper = centre - gap - p.lip_thick * b * body**0.7
    lower = centre + gap + 1.2 * p.lip_thick * b * body**0.7
    sk.fill(_band(x * mw, upper, lower), p.lip_color)
    if nz.mouth_open > 0.05:
        sk.fill(_band(x * mw, centre - gap, centre + gap), (60, 20, 24))
    else:
        sk.line(np.stack([x * mw, centre], 1), _mix(p.lip_color, (0, 0, 0), 0.5), 0.007)
    # eyes and brows
    ey, ew = p.eye_y * b, p.eye_w * a
    for side in (-1, 1):
        ex = side * p.eye_spacing * a
        _eye(sk, p, ex, ey, ew, 0.1 if nz.blink else p.eye_open, side * p.eye_tilt)
        bl = p.brow_len * ew
        xs = np.linspace(-1, 1, 9)
        mid = ey - p.brow_gap * b - p.brow_arch * b * (1 - xs**2) - side * p.brow_angle * bl * xs * 0.4
        half = 0.5 * p.brow_thick * b * (1.15 - 0.5 * side * xs)  # thicker at the inner end
        sk.fill(_band(ex + xs * bl, mid - half, mid + half), _mix(p.hair_color, (0, 0, 0), 0.25))
    if p.mole is not None:
        sk.fill(_ellipse(p.mole[0] * a, p.mole[1] * b, 0.018, 0.018, 10), _mix(skin, (40, 20, 10), 0.6))
    _hair(sk, p, a, b, front=True)
    # glasses (an identity trait) or sunglasses (an occluder)
    glasses = "sunglasses" if nz.occluder == "sunglasses" else p.glasses
    if glasses != "none":
        rx, ry = 1.45 * ew, max(1.1 * ew, 0.7 * ew + 0.05 * b)
        lens = _ellipse(0, 0, rx, ry, 24)
        if glasses == "square" or (glasses == "sunglasses" and p.glasses == "square"):
            lens = np.sign(lens) * np.abs(lens / (rx, ry)) ** 0.4 * (rx, ry)
        frame = p.glasses_color if glasses != "sunglasses" else (18, 18, 20)
        for side in (-1, 1):
            ring = lens + (side * p.eye_spacing * a, ey)
            if glasses == "sunglasses":
                sk.fill(ring, (22, 22, 28))
            sk.line(np.vstack([ring, ring[:1]]), frame, 0.012)
            sk.line([[side * (p.eye_spacing * a + rx), ey], [side * 0.99 * a, ear_y - 0.05 * b]], frame, 0.01)
        inner = p.eye_spacing * a - rx
        sk.line([[-inner, ey - 0.2 * ry], [0, ey - 0.35 * ry], [inner, ey - 0.2 * ry]], frame, 0.012)
    if nz.occluder == "hat":
        level = -nz.hat_level * b
        top = _ellipse(0, 0, 1.16 * a, 1.12 * b, 25)[12:25]
        top[:, 1] = np.minimum(top[:, 1], level)
        sk.fill(top, nz.occluder_color, _FLAT)
        brim = np.array([[-1.2, 0], [1.2, 0], [1.05, 0.08 * b / a], [-1.05, 0.08 * b / a]]) * a
        sk.fill(brim + (0, level), _mix(nz.occluder_color, (0, 0, 0), 0.3))
    return sk


# ------------------------------------------------------------------------------------------------- render


def _place(sk: _Sketch, p: FaceParams, nz: Nuisance, px: int) -> list[np.ndarray]:
    """All shapes' points in canvas pixels: yaw over a cylinder, then rotation, scale and shift."""
    points = np.vstack([s[0] for s in sk.shapes])
    counts = [len(s[0]) for s in sk.shapes]
    mode = np.repeat([s[1] for s in sk.shapes], counts)
    lift = np.repeat([s[2] for s in sk.shapes], counts)
    x, y = points[:, 0], points[:, 1]
    radius = 1.1 * p.face_h * p.face_ratio
    depth = np.where(mode == _SURFACE, np.sqrt(np.clip(radius**2 - x**2, 0, None)), 0.0) + lift
    turned = x * math.cos(nz.yaw) + depth * math.sin(nz.yaw)
    x = np.where(mode == _BODY, x, turned)
    c, s = math.cos(math.radians(nz.angle)), math.sin(math.radians(nz.angle))
    gx = _FACE_CENTRE[0] + nz.shift[0] + nz.scale * (c * x - s * y)
    gy = _FACE_CENTRE[1] + nz.shift[1] + nz.scale * (s * x + c * y)
    return np.split(np.stack([gx, gy], 1) * px, np.cumsum(counts)[:-1])


def _background(rng: np.random.Generator, px: int) -> Image.Image:
    """A portrait backdrop: a flat colour with a soft gradient, a blurry scene, or wall blocks."""
    kind = int(rng.integers(3))
    base = rng.uniform(30, 225) + rng.normal(0, 35, 3)  # muted colours, as behind most portraits
    if kind == 0:
        corners = np.clip(base + rng.normal(0, 25, (2, 2, 3)), 0, 255).astype(np.uint8)
        return Image.fromarray(corners).resize((px, px), Image.BILINEAR)
    if kind == 1:
        cells = int(rng.integers(3, 7))
        grid = np.clip(base + rng.normal(0, 60, (cells, cells, 3)), 0, 255).astype(np.uint8)
        return Image.fromarray(grid).resize((px, px), Image.BICUBIC)
    image = Image.new("RGB", (px, px), _color(base))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(2, 6))):
        x0, y0 = rng.uniform(-0.2, 0.9, 2) * px
        w, h = rng.uniform(0.1, 0.7, 2) * px
        draw.rectangle((x0, y0, x0 + w, y0 + h), fill=_color(base + rng.normal(0, 45, 3)))
    return image


def render_face(params: FaceParams, nuisance: Nuisance, size: int = 64) -> Image.Image:
    """One RGB image of ``size`` x ``size`` pixels of identity ``params`` under ``nuisance``."""
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"size must be in {MIN_SIZE}..{MAX_SIZE}, got {size}")
    px = size * _SUPERSAMPLE
    rng = np.random.default_rng(nuisance.texture_seed)
    canvas = _background(rng, px)
    draw = ImageDraw.Draw(canvas)
    sketch = _sketch_face(params, nuisance)
    for (_, _, _, color, width), pts in zip(sketch.shapes, _place(sketch, params, nuisance, px), strict=True):
        if width:
            draw.line(pts.ravel().tolist(), fill=color, width=max(1, round(width * px * nuisance.scale)))
        else:
            draw.polygon(pts.ravel().tolist(), fill=color)
    if nuisance.occluder == "bar":
        draw.rectangle(tuple(v * px for v in nuisance.bar), fill=nuisance.occluder_color)
    image = canvas.reduce(_SUPERSAMPLE)
    # lighting: contrast and brightness, a directional gradient, a colour cast
    arr = np.asarray(image, np.float32)
    arr = (arr - 128) * nuisance.contrast + 128 + nuisance.brightness
    axis = np.linspace(-1, 1, size, dtype=np.float32)
    ramp = (
        math.cos(nuisance.gradient_angle) * axis[None, :] + math.sin(nuisance.gradient_angle) * axis[:, None]
    )
    arr *= (1 + nuisance.gradient * ramp)[..., None] * np.asarray(nuisance.cast, np.float32)
    image = Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8))
    if nuisance.blur:
        image = image.filter(ImageFilter.GaussianBlur(nuisance.blur * size / 64))
    arr = np.asarray(image, np.float32) + rng.normal(0, nuisance.noise, (size, size, 3)).astype(np.float32)
    return Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8))


def render_identity_image(
    params: FaceParams, nuisance_rng: np.random.Generator, size: int = 64
) -> Image.Image:
    """An image of identity ``params`` with nuisances drawn from ``nuisance_rng``."""
    return render_face(params, sample_nuisance(nuisance_rng), size)


def identity_params(seed: int, identity: int) -> FaceParams:
    """The parameters of identity number ``identity`` (0-based) of ``seed``."""
    return sample_identity(np.random.default_rng((seed, _STREAM_IDENTITY, identity)))


def image_rng(seed: int, identity: int, k: int) -> np.random.Generator:
    """The nuisance generator of image ``k`` (0-based) of identity ``identity``."""
    return np.random.default_rng((seed, _STREAM_IMAGE, identity, k))


def identity_name(identity: int, n_identities: int) -> str:
    """``id_0007``; wider numbers when there are more than 10,000 identities."""
    return f"id_{identity:0{max(4, len(str(n_identities - 1)))}d}"


def identity_arrays(
    n_identities: int, images_per_identity: int, size: int = 64, seed: int = 0, start: int = 0
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """All images in memory: (uint8 [N, size, size, 3], int64 labels [N], names), identity after identity, for the
    identities ``start .. start + n_identities - 1`` (labels count from 0).

    The same pixels as the PNGs ``make_identities`` writes for the same seed (image ``k`` of ``names[i]``)."""
    _check(n_identities, images_per_identity, size, seed)
    images = np.empty((n_identities * images_per_identity, size, size, 3), np.uint8)
    for i in range(n_identities):
        params = identity_params(seed, start + i)
        for k in range(images_per_identity):
            images[i * images_per_identity + k] = np.asarray(
                render_identity_image(params, image_rng(seed, start + i, k), size)
            )
    labels = np.repeat(np.arange(n_identities, dtype=np.int64), images_per_identity)
    last = start + n_identities
    return images, labels, [identity_name(start + i, last) for i in range(n_identities)]


def _check(n_identities: int, images_per_identity: int, size: int, seed: int) -> None:
    if n_identities < 1 or images_per_identity < 1 or seed < 0:
        got = f"{n_identities}, {images_per_identity}, {seed}"
        raise MMKitError(f"need identities >= 1, images >= 1 and seed >= 0, got {got}")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise MMKitError(f"image size must be in {MIN_SIZE}..{MAX_SIZE} pixels, got {size}")


# ------------------------------------------------------------------------------------------------- on disk


def _write_identity(folder: Path, seed: int, identity: int, name: str, images: int, size: int) -> None:
    params = identity_params(seed, identity)
    (folder / name).mkdir(parents=True, exist_ok=True)
    for k in range(images):
        image = render_identity_image(params, image_rng(seed, identity, k), size)
        image.save(folder / image_name(name, k + 1, ".png"), format="PNG")


def make_identities(
    out: Path,
    n_identities: int = 300,
    images_per_identity: int = 12,
    size: int = 64,
    test_fraction: float = 0.2,
    n_pairs_folds: int = 10,
    pairs_per_fold: int = 300,
    seed: int = 0,
    workers: int = 1,
) -> dict:
    """Write ``out/train/<name>/``, ``out/test/<name>/`` (disjoint identities: an open set), ``out/pairs.txt``
    (LFW format, test identities only) and ``out/README.txt``; return a summary dict.

    ``round(test_fraction * n)`` identities (at least 2) go to test. Pairs come from ``sample_pairs``: folds
    of disjoint identities, as LFW's, when there are at least 2 test identities per fold; ``pairs_per_fold``
    is lowered (with a warning) to what the smallest fold gives without repeating a pair. ``workers`` > 1
    writes identities in that many processes (same bytes). ``out`` must be new, empty, or a previous output
    (whose train/, test/ and pairs.txt are then replaced).
    """
    out = Path(out)
    _check(n_identities, images_per_identity, size, seed)
    if images_per_identity < 2 or not 0 <= test_fraction < 1 or n_pairs_folds < 1 or pairs_per_fold < 1:
        got = f"{images_per_identity}, {test_fraction}, {n_pairs_folds}, {pairs_per_fold}"
        raise MMKitError(f"need images >= 2, test fraction in [0, 1), folds >= 1 and pairs >= 1, got {got}")
    n_test = max(2, round(test_fraction * n_identities)) if test_fraction > 0 else 0
    if n_test >= n_identities:
        raise MMKitError(f"{n_identities} identities leave none for training after {n_test} test identities")
    claim_output_folder(out, README_MARKER, "mmkit data synth identities")
    start = time.perf_counter()
    settings = f"seed {seed}, {n_identities} identities x {images_per_identity} images, {size} px, "
    settings += f"test fraction {test_fraction}"
    order = np.random.default_rng((seed, _STREAM_SPLIT)).permutation(n_identities)
    test_ids = sorted(int(i) for i in order[:n_test])
    test_set = set(test_ids)
    names = {i: identity_name(i, n_identities) for i in range(n_identities)}
    with staged_output(out, replaces=("train", "test", "pairs.txt")) as partial:
        folders = [partial / ("test" if i in test_set else "train") for i in range(n_identities)]
        jobs = [(folders[i], seed, i, names[i], images_per_identity, size) for i in range(n_identities)]
        if workers > 1:
            with ProcessPoolExecutor(workers) as pool:
                chunk = max(1, len(jobs) // (4 * workers))
                list(pool.map(_write_identity, *zip(*jobs, strict=True), chunksize=chunk))
        else:
            for job in jobs:
                _write_identity(*job)
        seconds = time.perf_counter() - start
        n_pairs, per_fold, disjoint = 0, 0, False
        if n_test:
            counts = {names[i]: images_per_identity for i in test_ids}
            rng = np.random.default_rng((seed, _STREAM_PAIRS))
            rows, per_fold, disjoint = sample_pairs(counts, n_pairs_folds, pairs_per_fold, rng)
            if per_fold < pairs_per_fold:
                logger.warning(
                    "pairs.txt: %d pairs per fold asked, the test set gives %d", pairs_per_fold, per_fold
                )
            write_pairs(partial / "pairs.txt", rows, n_pairs_folds, per_fold)
            n_pairs = len(rows)
        n_images = n_identities * images_per_identity
        n_train = n_identities - n_test
        summary = {
            "out": str(out), "seed": seed, "size": size, "identities": n_identities, "train_identities": n_train,
            "test_identities": n_test, "images_per_identity": images_per_identity,
            "train_images": n_train * images_per_identity, "test_images": n_test * images_per_identity,
            "folds": n_pairs_folds if n_test else 0, "pairs_per_fold": per_fold, "pairs": n_pairs,
            "identity_disjoint_folds": disjoint, "seconds": round(seconds, 3),
            "images_per_s": round(n_images / max(seconds, 1e-9), 1),
        }  # fmt: skip
        (partial / "README.txt").write_text(_readme(settings, summary), encoding="utf-8")
    logger.info("wrote %d images of %d identities in %.1f s", n_images, n_identities, seconds)
    return summary


def _readme(settings: str, s: dict) -> str:
    n = s["pairs_per_fold"]
    folds = "no test identities, no pairs.txt\n"
    if s["pairs"]:
        folds = (
            f"pairs.txt: LFW pairs format over the test identities, header '{s['folds']} {n}', per fold {n}\n"
            f"matched lines 'name i j' then {n} mismatched lines 'name1 i name2 j' (1-based image numbers);\n"
            f"folds use {'disjoint identities' if s['identity_disjoint_folds'] else 'all test identities'}.\n"
        )
    return (
        f"{README_MARKER}\n"
        f"Written by mmkit.data.synthetic_faces.make_identities: {settings}.\n"
        f"Stylised frontal faces; an identity is a random parameter vector, each image draws new pose,\n"
        f"lighting, background, expression, occlusion, noise and blur. Same seed -> identical files.\n\n"
        f"train/: {s['train_identities']} identities, test/: {s['test_identities']} others (open set).\n"
        f"Image k of identity id_NNNN is <split>/id_NNNN/id_NNNN_<kkkk>.png (LFW's naming, k from 1).\n"
        f"{folds}Read them with mmkit.data.formats.pairs.read_pairs('pairs.txt', root='test').\n"
    )
