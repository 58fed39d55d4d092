"""One decode per analysis pass: every analyser reads the same ``DecodedImage``.

The original is opened once; JPEGs are decoded at a reduced DCT scale straight to about the
working size (shrink-on-load); large PNG, WebP and TIFF files are read by libvips, which
shrinks them while it streams them in, so a 100 MP PNG never sits in memory at full size;
everything else is reduced right after decoding. Metadata the analysers need (EXIF, ICC,
mode, frames) is read from the same open file (Pillow reads only the header for it).

Analysers take their pixels from one shared pyramid (``DecodedImage.rgb_at``): each asks for
the smallest copy that serves it, and every copy is made from the smallest one already made
that is large enough, with libvips' Lanczos filter (sharp, and several times faster than
Pillow's).
"""

from __future__ import annotations

import io
import threading
import warnings
from dataclasses import dataclass, field
from typing import BinaryIO, Literal

import numpy as np
import pillow_heif
import pyvips
from PIL import Image

from iap.images.inspection import ALLOWED_FORMATS

pillow_heif.register_heif_opener()

# libvips gets one thread, as every native library does (``process.prepare_process``: a
# pass runs analysers side by side instead). Its operation cache would keep pixels alive
# between passes.
pyvips.concurrency_set(1)
pyvips.cache_set_max(0)

# Long side of the working image: at most WORKING_MAX_SIDE, and (when the original is larger)
# at least MIN_WORKING_SIDE, enough for 1024 px previews and every measurement.
WORKING_MAX_SIDE = 2048
MIN_WORKING_SIDE = 1024
# Formats libvips shrinks while it reads them; used for originals larger than the working
# size (smaller ones decode as quickly with Pillow, whose handling of modes is the reference).
STREAMED_FORMATS = frozenset({"PNG", "WEBP", "TIFF"})

Channel = Literal["RGB", "L", "A"]
_REDUCIBLE = frozenset({"L", "LA", "RGB", "RGBA", "RGBa", "La"})

_TRANSPOSE = {
    2: [Image.Transpose.FLIP_LEFT_RIGHT],
    3: [Image.Transpose.ROTATE_180],
    4: [Image.Transpose.FLIP_TOP_BOTTOM],
    5: [Image.Transpose.TRANSPOSE],
    6: [Image.Transpose.ROTATE_270],
    7: [Image.Transpose.TRANSVERSE],
    8: [Image.Transpose.ROTATE_90],
}


@dataclass(frozen=True)
class DecodedImage:
    """An original, decoded once for all analysers of a pass.

    ``rgb`` is upright (EXIF orientation applied), RGB, at most ``WORKING_MAX_SIDE`` on its
    long side; ``alpha`` is its alpha channel at the same size when the original has one.
    Everything else describes the original file. Smaller copies come from ``rgb_at``,
    ``grey_at`` and ``alpha_at``; they are shared by the pass's analysers, so treat them as
    read-only (``copy()`` one before changing it).
    """

    rgb: Image.Image
    alpha: Image.Image | None
    format: str
    width: int
    height: int
    mode: str
    frames: int
    orientation: int
    exif: Image.Exif
    icc_profile: bytes | None
    info: dict[str, object] = field(default_factory=dict)
    _levels: dict[tuple[Channel, int], Image.Image] = field(
        default_factory=dict, repr=False, compare=False
    )
    # Analysers running side by side ask for the same copies: each is made once, by the
    # first to ask, while the others wait for it.
    _making: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    @property
    def scale(self) -> float:
        """Working size / original size, upright (1.0 when no reduction happened)."""
        upright_width = self.height if self.orientation in (5, 6, 7, 8) else self.width
        return self.rgb.width / upright_width if upright_width else 1.0

    def rgb_at(self, side: int) -> Image.Image:
        """The working image reduced to at most ``side`` on its long side (never enlarged)."""
        return self._level("RGB", side)

    def grey_at(self, side: int) -> Image.Image:
        """Luma (ITU-R 601, Pillow's "L") of ``rgb_at(side)``."""
        with self._making:
            key: tuple[Channel, int] = ("L", max(self._level("RGB", side).size))
            if key not in self._levels:
                self._levels[key] = self._level("RGB", side).convert("L")
            return self._levels[key]

    def alpha_at(self, side: int) -> Image.Image | None:
        """The alpha channel at the size of ``rgb_at(side)``; None when the image has none."""
        return None if self.alpha is None else self._level("A", side)

    def _level(self, channel: Channel, side: int) -> Image.Image:
        base = self.rgb if channel == "RGB" else self.alpha
        assert base is not None
        target = _fit(base.size, side)
        if target == base.size:
            return base
        key = (channel, max(target))
        with self._making:
            level = self._levels.get(key)
            if level is None:
                if max(target) < MIN_WORKING_SIDE:
                    # Small copies come from the MIN_WORKING_SIDE one (the previews' size,
                    # which a pass makes anyway), not from the larger working image.
                    self._level(channel, MIN_WORKING_SIDE)
                # From the smallest copy already made that is at least as large.
                larger = [
                    image
                    for (kind, long_side), image in self._levels.items()
                    if kind == channel and long_side > max(target)
                ]
                source = min(larger, key=lambda image: image.width, default=base)
                level = self._levels[key] = _resize(source, target)
            return level


def decode(source: BinaryIO, max_side: int = WORKING_MAX_SIDE) -> DecodedImage:
    """Decode ``source`` once into a ``DecodedImage``. Blocking: run it in a worker thread."""
    source.seek(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(source, formats=list(ALLOWED_FORMATS)) as image:
            width, height = image.size
            fmt = image.format or ""
            streamed = fmt in STREAMED_FORMATS and max(width, height) > max_side
            exif = _exif(image, fmt, streamed)
            orientation = int(exif.get(0x0112, 1) or 1)
            mode = image.mode
            frames = int(getattr(image, "n_frames", 1))
            icc = image.info.get("icc_profile")
            info: dict[str, object] = {
                str(k): v for k, v in image.info.items() if isinstance(v, (int, float, str))
            }
            has_alpha = "A" in image.getbands() or "transparency" in image.info
            frame = _streamed(source, max_side, has_alpha) if streamed else None
            if frame is None:
                frame = _decoded(image, fmt, has_alpha)
    if orientation != 1:
        frame = _upright(frame, orientation)
    if max(frame.size) > max_side:
        frame = _resize(frame, _fit(frame.size, max_side))
    alpha = frame.getchannel("A") if has_alpha else None
    rgb = frame.convert("RGB") if has_alpha else frame
    return DecodedImage(
        rgb=rgb,
        alpha=alpha,
        format=fmt,
        width=width,
        height=height,
        mode=mode,
        frames=frames,
        orientation=orientation,
        exif=exif,
        icc_profile=icc if isinstance(icc, bytes) else None,
        info=info,
    )


def _exif(image: Image.Image, fmt: str, streamed: bool) -> Image.Exif:
    """The EXIF Pillow reads. For a PNG that libvips is to stream, only an eXIf chunk ahead of
    the pixels (where writers put it): to look behind them, Pillow would decode the image."""
    if fmt == "PNG" and streamed:
        exif = Image.Exif()
        raw = image.info.get("exif")
        if isinstance(raw, bytes):
            exif.load(raw)
        return exif
    return image.getexif()


def _decoded(image: Image.Image, fmt: str, has_alpha: bool) -> Image.Image:
    """The first frame decoded by Pillow, 8 bits per channel, RGB(A)."""
    width, height = image.size
    if fmt == "JPEG":
        # DCT scaling (1/2, 1/4, 1/8) picks the smallest scale that still covers the
        # requested size: ask for the least any analyser needs, get 1x-2x of it.
        ratio = max(width, height) / MIN_WORKING_SIDE
        if ratio > 1:
            image.draft("RGB", (int(width / ratio), int(height / ratio)))
    image.seek(0)
    image.load()
    factor = max(image.size) // (2 * WORKING_MAX_SIDE)
    if factor >= 2 and image.mode in _REDUCIBLE:
        # Reduced before it is converted: one full-size copy (the decoded one), not two.
        image = image.reduce(factor)
    return _to_8_bit(image).convert("RGBA" if has_alpha else "RGB")


def _streamed(source: BinaryIO, max_side: int, has_alpha: bool) -> Image.Image | None:
    """The first frame read and shrunk to ``max_side`` by libvips in one streaming pass, as
    8-bit RGB(A) not yet turned upright; None when libvips cannot read it (Pillow then
    decodes it the usual way)."""
    data = source.getbuffer() if isinstance(source, io.BytesIO) else source.read()
    try:
        # no_rotate: the orientation is applied like Pillow's, from the EXIF Pillow read. A
        # source over the bytes, not a buffer: libvips would copy a buffer first.
        image = pyvips.Image.thumbnail_source(
            pyvips.Source.new_from_memory(data),
            max_side,
            height=max_side,
            size="down",
            no_rotate=True,
        )
        # Greyscale, 16-bit, CMYK...: 8-bit sRGB, 3 bands, or 4 with alpha.
        if image.interpretation != "srgb" or image.format != "uchar" or image.bands < 3:
            image = image.colourspace("srgb")
        pixels = image.numpy()
    except pyvips.Error:
        return None
    finally:
        source.seek(0)
    mode = "RGBA" if pixels.shape[2] >= 4 else "RGB"
    frame = Image.fromarray(np.ascontiguousarray(pixels[:, :, : len(mode)]), mode)
    wanted = "RGBA" if has_alpha else "RGB"
    return frame if frame.mode == wanted else frame.convert(wanted)


def _upright(frame: Image.Image, orientation: int) -> Image.Image:
    for method in _TRANSPOSE.get(orientation, []):
        frame = frame.transpose(method)
    return frame


def _fit(size: tuple[int, int], side: int) -> tuple[int, int]:
    """``size`` scaled down (never up) so that its long side is at most ``side``."""
    width, height = size
    if max(width, height) <= side:
        return size
    ratio = side / max(width, height)
    return max(1, round(width * ratio)), max(1, round(height * ratio))


def _resize(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``image`` reduced to ``size`` with libvips' Lanczos-3 (Pillow's is several times slower
    at the sizes a pass uses). From 4x or more, a box reduction by a whole factor comes first
    (what Pillow's ``reducing_gap`` does): as sharp, cheaper, and it spares a full-size copy."""
    factor = min(image.width // size[0], image.height // size[1]) // 2
    if factor >= 2:
        image = image.reduce(factor)
    pixels = np.asarray(image)
    bands = 1 if pixels.ndim == 2 else pixels.shape[2]
    height, width = pixels.shape[:2]
    vips = pyvips.Image.new_from_memory(
        np.ascontiguousarray(pixels).data, width, height, bands, "uchar"
    )
    reduced = vips.resize(size[0] / width, vscale=size[1] / height, kernel="lanczos3")
    out = reduced.numpy()
    if out.shape[1] != size[0] or out.shape[0] != size[1]:  # rounding: crop or pad one px
        out = np.asarray(Image.fromarray(out).resize(size, Image.Resampling.NEAREST))
    return Image.fromarray(np.ascontiguousarray(out), image.mode)


def _to_8_bit(image: Image.Image) -> Image.Image:
    """16-bit greyscale scaled to 8 bits (Pillow's own conversion clips it at 255, so nearly
    every pixel of a 16-bit image would turn white)."""
    if image.mode not in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        return image
    pixels = np.asarray(image, dtype=np.uint32) if image.mode != "I" else np.asarray(image)
    top = 65535 if image.mode != "I" or pixels.max(initial=0) > 255 else 255
    scaled = np.clip(pixels.astype(np.float64) * (255 / top), 0, 255).round().astype(np.uint8)
    return Image.fromarray(scaled, mode="L")
