"""The EXIF analyser reads camera, exposure, date and GPS, and shrugs off broken EXIF."""

from __future__ import annotations

import struct
import warnings
from datetime import datetime, timedelta, timezone

import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from iap.analysis.analysers.exif import EXIF_IFD, GPS_IFD, ExifAnalyser, ExifResult
from tests.analysis.factories import decoded, solid

ANALYSER = ExifAnalyser()


def exif_of(image_exif: Image.Exif | bytes, fmt: str = "JPEG") -> ExifResult:
    result = ANALYSER.analyse(decoded(solid((120, 130, 140)), fmt, exif=image_exif)).result
    assert isinstance(result, ExifResult)
    return result


def dms(value: float) -> tuple[IFDRational, IFDRational, IFDRational]:
    """Degrees as EXIF writes them: whole degrees, whole minutes, seconds in 1/100."""
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = round((value - degrees - minutes / 60) * 3600 * 100)
    return IFDRational(degrees, 1), IFDRational(minutes, 1), IFDRational(seconds, 100)


def camera_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif[0x0110] = "Canon EOS R6"
    exif[0x0131] = "Darktable 4.6"
    details = exif.get_ifd(EXIF_IFD)
    details[0x829A] = IFDRational(1, 250)
    details[0x829D] = IFDRational(28, 10)
    details[0x8827] = 400
    details[0x920A] = IFDRational(50, 1)
    details[0xA405] = 50
    details[0xA433] = "Canon"
    details[0xA434] = "RF50mm F1.8 STM"
    details[0x9003] = "2024:05:01 12:30:45"
    details[0x9011] = "+02:00"
    return exif


def test_camera_lens_and_exposure_are_read() -> None:
    result = exif_of(camera_exif())
    assert result.has_exif
    assert (result.make, result.model, result.software) == (
        "Canon",
        "Canon EOS R6",
        "Darktable 4.6",
    )
    assert (result.lens_make, result.lens_model) == ("Canon", "RF50mm F1.8 STM")
    assert result.exposure_time == pytest.approx(0.004)
    assert result.f_number == pytest.approx(2.8)
    assert result.iso == 400
    assert result.focal_length == pytest.approx(50.0)
    assert result.focal_length_35mm == 50


def test_date_taken_is_iso_8601_with_the_recorded_offset() -> None:
    result = exif_of(camera_exif())
    assert result.date_taken == datetime(
        2024, 5, 1, 12, 30, 45, tzinfo=timezone(timedelta(hours=2))
    )
    assert result.model_dump(mode="json")["date_taken"] == "2024-05-01T12:30:45+02:00"


def test_date_taken_falls_back_to_ifd0_datetime_without_offset() -> None:
    exif = Image.Exif()
    exif[0x0132] = "2019:12:31 23:59:59"
    assert exif_of(exif).date_taken == datetime(2019, 12, 31, 23, 59, 59)


def test_gps_position_is_in_signed_decimal_degrees() -> None:
    latitude, longitude = -33.856784, 151.215297
    exif = camera_exif()
    gps = exif.get_ifd(GPS_IFD)
    gps[1], gps[2] = "S", dms(abs(latitude))
    gps[3], gps[4] = "E", dms(longitude)
    gps[5], gps[6] = 0, IFDRational(125, 10)
    result = exif_of(exif)
    assert result.gps is not None
    assert result.gps.latitude == pytest.approx(latitude, abs=1e-4)
    assert result.gps.longitude == pytest.approx(longitude, abs=1e-4)
    assert result.gps.altitude == pytest.approx(12.5)


def test_gps_west_and_below_sea_level_are_negative() -> None:
    exif = Image.Exif()
    gps = exif.get_ifd(GPS_IFD)
    gps[1], gps[2] = "N", dms(31.5590)
    gps[3], gps[4] = "W", dms(115.6)
    gps[5], gps[6] = 1, IFDRational(86, 1)
    result = exif_of(exif)
    assert result.gps is not None
    assert result.gps.latitude == pytest.approx(31.5590, abs=1e-4)
    assert result.gps.longitude == pytest.approx(-115.6, abs=1e-4)
    assert result.gps.altitude == pytest.approx(-86.0)


def test_image_without_exif_gives_an_empty_result() -> None:
    result = ANALYSER.analyse(decoded(solid((1, 2, 3)), "PNG")).result
    assert isinstance(result, ExifResult)
    assert not result.has_exif
    assert result.model_dump(exclude={"has_exif"}) == dict.fromkeys(
        ExifResult.model_fields.keys() - {"has_exif"}
    )


def test_garbage_values_are_skipped_not_fatal() -> None:
    exif = Image.Exif()
    exif[0x010F] = "Can\x00on\x07  "
    exif[0x0110] = ""
    details = exif.get_ifd(EXIF_IFD)
    details[0x829A] = IFDRational(1, 0)
    details[0x829D] = "f/2.8"
    details[0x8827] = "fast"
    details[0x920A] = IFDRational(-35, 1)
    details[0x9003] = "0000:00:00 00:00:00"
    details[0x9011] = "+99:99"
    gps = exif.get_ifd(GPS_IFD)
    gps[1], gps[2] = "N", (IFDRational(48, 0), IFDRational(1, 1), IFDRational(0, 1))
    gps[3], gps[4] = "E", (IFDRational(2, 1), IFDRational(21, 1), IFDRational(0, 1))
    result = exif_of(exif)
    assert result.make == "Canon"
    assert result.model is None
    assert (result.exposure_time, result.f_number, result.iso) == (None, None, None)
    assert result.focal_length is None
    assert result.date_taken is None
    assert result.gps is None


def test_out_of_range_gps_and_unknown_hemisphere_are_dropped() -> None:
    for lat_ref, latitude in (("N", 123.0), ("X", 45.0)):
        exif = Image.Exif()
        gps = exif.get_ifd(GPS_IFD)
        gps[1], gps[2] = lat_ref, dms(latitude)
        gps[3], gps[4] = "E", dms(10.0)
        assert exif_of(exif).gps is None


def test_exif_ifd_pointing_past_the_end_keeps_the_rest() -> None:
    # Hand-made TIFF block: Make = "Nikon", and an Exif IFD offset far beyond the data.
    entries = struct.pack("<HHII", 0x010F, 2, 6, 38) + struct.pack("<HHII", 0x8769, 4, 1, 5000)
    tiff = b"II*\x00" + struct.pack("<IH", 8, 2) + entries + struct.pack("<I", 0) + b"Nikon\x00"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns about the corrupt block; expected here.
        result = exif_of(b"Exif\x00\x00" + tiff)
    assert result.make == "Nikon"
    assert result.exposure_time is None
