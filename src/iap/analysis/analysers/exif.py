"""EXIF: camera, lens, exposure, date taken and GPS position.

EXIF is written by thousands of devices and editors, many of them wrong: every field is read
defensively, and a field that is missing, malformed or out of range is simply left out (None);
odd EXIF never fails the analyser.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from numbers import Rational
from typing import Any, ClassVar

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from iap.analysis.analysers.base import AnalyserResult, Output
from iap.analysis.decode import DecodedImage

EXIF_IFD = 0x8769
GPS_IFD = 0x8825

# IFD0
MAKE, MODEL, SOFTWARE, DATETIME = 0x010F, 0x0110, 0x0131, 0x0132
# Exif IFD
EXPOSURE_TIME, F_NUMBER, ISO = 0x829A, 0x829D, 0x8827
DATETIME_ORIGINAL, DATETIME_DIGITIZED = 0x9003, 0x9004
OFFSET_TIME_ORIGINAL, OFFSET_TIME_DIGITIZED, OFFSET_TIME = 0x9011, 0x9012, 0x9010
FOCAL_LENGTH, FOCAL_LENGTH_35MM = 0x920A, 0xA405
LENS_MAKE, LENS_MODEL = 0xA433, 0xA434
# GPS IFD
GPS_LAT_REF, GPS_LAT, GPS_LON_REF, GPS_LON, GPS_ALT_REF, GPS_ALT = 1, 2, 3, 4, 5, 6

_MAX_TEXT = 200


class GpsPosition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    latitude: float = Field(description="Decimal degrees, north positive (-90..90).")
    longitude: float = Field(description="Decimal degrees, east positive (-180..180).")
    altitude: float | None = Field(
        description="Metres above sea level (negative below), when recorded."
    )


class ExifResult(AnalyserResult):
    has_exif: bool = Field(description="The file carries EXIF metadata at all.")
    make: str | None = Field(description="Camera maker, e.g. 'Canon'.")
    model: str | None = Field(description="Camera model, e.g. 'Canon EOS R6'.")
    lens_make: str | None = Field(description="Lens maker.")
    lens_model: str | None = Field(description="Lens model, e.g. 'RF24-105mm F4 L IS USM'.")
    exposure_time: float | None = Field(description="Exposure time in seconds (1/250 = 0.004).")
    f_number: float | None = Field(description="Aperture as an f-number, e.g. 2.8.")
    iso: int | None = Field(description="ISO speed.")
    focal_length: float | None = Field(description="Focal length in millimetres.")
    focal_length_35mm: int | None = Field(description="35 mm-equivalent focal length in mm.")
    date_taken: datetime | None = Field(
        description="When the picture was taken (DateTimeOriginal, else DateTimeDigitized, else "
        "DateTime), ISO 8601. Camera clock time; carries a UTC offset only when the file "
        "records one (OffsetTimeOriginal)."
    )
    software: str | None = Field(description="Software that wrote the file.")
    gps: GpsPosition | None = Field(
        description="Where it was taken, when the file records a valid position. Shown only to "
        "the image's owner."
    )


class ExifAnalyser:
    name: ClassVar[str] = "exif"
    version: ClassVar[int] = 1
    result_model: ClassVar[type[AnalyserResult]] = ExifResult

    def unavailable(self) -> str | None:
        return None

    def analyse(self, image: DecodedImage) -> Output:
        exif = image.exif
        ifd0: Mapping[int, Any] = exif
        details = _ifd(exif, EXIF_IFD)
        gps = _ifd(exif, GPS_IFD)
        return Output(
            ExifResult(
                has_exif=bool(len(exif)),
                make=_text(ifd0.get(MAKE)),
                model=_text(ifd0.get(MODEL)),
                lens_make=_text(details.get(LENS_MAKE)),
                lens_model=_text(details.get(LENS_MODEL)),
                exposure_time=_positive(_number(details.get(EXPOSURE_TIME))),
                f_number=_positive(_number(details.get(F_NUMBER))),
                iso=_integer(details.get(ISO)),
                focal_length=_positive(_number(details.get(FOCAL_LENGTH))),
                focal_length_35mm=_integer(details.get(FOCAL_LENGTH_35MM)),
                date_taken=_date_taken(ifd0, details),
                software=_text(ifd0.get(SOFTWARE)),
                gps=_gps_position(gps),
            )
        )


def _ifd(exif: Image.Exif, tag: int) -> Mapping[int, Any]:
    """A sub-IFD as a mapping; empty when absent or unreadable (Pillow can raise on corrupt
    offsets, and a broken sub-IFD must not cost the rest of the EXIF)."""
    try:
        ifd = exif.get_ifd(tag)
    except Exception:
        return {}
    return ifd if isinstance(ifd, Mapping) else {}


def _text(value: object) -> str | None:
    """A printable, trimmed string, or None. EXIF strings come as str or bytes, padded with NULs
    or spaces; control characters are dropped (they have no business in a camera name)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        return None
    cleaned = "".join(ch for ch in value if ch.isprintable()).strip()
    return cleaned[:_MAX_TEXT] or None


def _number(value: object) -> float | None:
    """A finite float from an int, float, rational (Pillow's IFDRational, Fraction) or a
    (numerator, denominator) pair; None for anything else, including x/0."""
    if isinstance(value, bool):
        return None
    if isinstance(value, tuple) and len(value) == 1:
        return _number(value[0])
    if isinstance(value, tuple) and len(value) == 2:
        numerator, denominator = value
        if (
            not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
            or not denominator
        ):
            return None
        return float(numerator) / float(denominator)
    if isinstance(value, Rational):
        # Pillow's IFDRational keeps x/0 as NaN (caught below); other rationals raise.
        if not value.denominator:
            return None
        number = float(value)
    elif isinstance(value, (int, float)):
        number = float(value)
    else:
        return None
    return number if math.isfinite(number) else None


def _positive(value: float | None) -> float | None:
    return value if value is not None and value > 0 else None


def _integer(value: object) -> int | None:
    """A positive integer; ISO is sometimes a sequence of values, the first one counts."""
    if isinstance(value, (tuple, list)) and value:
        value = value[0]
    number = _number(value)
    if number is None or number <= 0 or number > 10_000_000:
        return None
    return round(number)


def _date_taken(ifd0: Mapping[int, Any], details: Mapping[int, Any]) -> datetime | None:
    candidates = (
        (details.get(DATETIME_ORIGINAL), details.get(OFFSET_TIME_ORIGINAL)),
        (details.get(DATETIME_DIGITIZED), details.get(OFFSET_TIME_DIGITIZED)),
        (ifd0.get(DATETIME), details.get(OFFSET_TIME)),
    )
    for value, offset in candidates:
        taken = _datetime(_text(value))
        if taken is not None:
            zone = _utc_offset(_text(offset))
            return taken.replace(tzinfo=zone) if zone is not None else taken
    return None


def _datetime(text: str | None) -> datetime | None:
    """'YYYY:MM:DD HH:MM:SS' (some writers use '-' in the date); blanks and zeros are None."""
    if not text:
        return None
    normalised = text[:19].replace("-", ":")
    try:
        return datetime.strptime(normalised, "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None


def _utc_offset(text: str | None) -> timezone | None:
    """'+02:00' / '-05:30' as a timezone; None when absent or malformed."""
    if not text or len(text) != 6 or text[0] not in "+-" or text[3] != ":":
        return None
    hours, minutes = text[1:3], text[4:6]
    if not (hours.isdigit() and minutes.isdigit()):
        return None
    delta = timedelta(hours=int(hours), minutes=int(minutes))
    if delta > timedelta(hours=14) or int(minutes) >= 60:
        return None
    return timezone(-delta if text[0] == "-" else delta)


def _gps_position(gps: Mapping[int, Any]) -> GpsPosition | None:
    latitude = _coordinate(gps.get(GPS_LAT), _text(gps.get(GPS_LAT_REF)), "N", "S", 90)
    longitude = _coordinate(gps.get(GPS_LON), _text(gps.get(GPS_LON_REF)), "E", "W", 180)
    if latitude is None or longitude is None:
        return None
    return GpsPosition(latitude=latitude, longitude=longitude, altitude=_altitude(gps))


def _coordinate(
    value: object, ref: str | None, positive: str, negative: str, limit: float
) -> float | None:
    """Degrees/minutes/seconds (three rationals) and a hemisphere letter as signed degrees."""
    if ref is None or ref.upper()[:1] not in (positive, negative):
        return None
    if not isinstance(value, (tuple, list)) or not 1 <= len(value) <= 3:
        return None
    numbers = [_number(part) for part in value]
    parts = [number for number in numbers if number is not None and number >= 0]
    if len(parts) != len(numbers):
        return None
    degrees = sum(part / 60.0**i for i, part in enumerate(parts))
    if degrees > limit:
        return None
    return -degrees if ref.upper()[:1] == negative else degrees


def _altitude(gps: Mapping[int, Any]) -> float | None:
    altitude = _number(gps.get(GPS_ALT))
    if altitude is None or not -20_000 <= altitude <= 100_000:
        return None
    ref = gps.get(GPS_ALT_REF)
    if isinstance(ref, bytes):
        ref = ref[0] if ref else 0
    # AltitudeRef 1 means below sea level.
    return -altitude if ref == 1 else altitude
