"""The registry: every analyser is named once, honours its schema, and runs in a real pass."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from iap.analysis.analysers import ANALYSERS, by_name
from iap.analysis.analysers.base import AnalyserResult
from iap.analysis.pipeline import run_pass
from iap.analysis.results import AnalysisResultsBase
from tests.analysis.factories import astronaut, decoded, encode


def photo_jpeg() -> bytes:
    """A real photo with camera EXIF and GPS, as a phone would upload it."""
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Apple", "iPhone 15"
    exif.get_ifd(0x8769)[0x9003] = "2024:07:14 09:00:00"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (IFDRational(51, 1), IFDRational(30, 1), IFDRational(0, 1))
    gps[3], gps[4] = "W", (IFDRational(0, 1), IFDRational(7, 1), IFDRational(30, 1))
    return encode(astronaut(1600), "JPEG", quality=90, exif=exif)


def test_names_are_unique_and_fit_the_api() -> None:
    names = [analyser.name for analyser in ANALYSERS]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"[a-z][a-z0-9_]{0,49}", name) for name in names)
    assert all(analyser.version >= 1 for analyser in ANALYSERS)


def test_names_are_free_as_fields_of_the_typed_results() -> None:
    # Each name becomes a field of AnalysisResults: it must not shadow a method of it.
    taken = set(dir(AnalysisResultsBase))
    assert [a.name for a in ANALYSERS if a.name in taken or a.name.startswith("model_")] == []


def test_every_result_model_documents_its_fields() -> None:
    for analyser in ANALYSERS:
        assert issubclass(analyser.result_model, AnalyserResult)
        schema = analyser.result_model.model_json_schema()
        undocumented = [f for f, s in schema["properties"].items() if "description" not in s]
        assert undocumented == [], analyser.name


def test_every_result_validates_against_its_model() -> None:
    image = decoded(astronaut(1600), "JPEG")
    for analyser in ANALYSERS:
        if analyser.unavailable() is not None:
            continue
        result = analyser.analyse(image).result
        assert isinstance(result, analyser.result_model), analyser.name
        wire = result.model_dump_json()
        assert analyser.result_model.model_validate_json(wire) == result, analyser.name


def test_by_name_returns_analysers_in_registry_order() -> None:
    chosen = by_name(["quality", "colours", "quality"])
    assert [analyser.name for analyser in chosen] == ["colours", "quality"]
    assert by_name([]) == []


def test_by_name_rejects_unknown_names_listing_them() -> None:
    with pytest.raises(KeyError) as raised:
        by_name(["colours", "nope", "bogus"])
    assert raised.value.args[0] == "bogus, nope"


def test_pipeline_runs_every_available_analyser_on_a_jpeg() -> None:
    _decode_ms, outcomes = run_pass(io.BytesIO(photo_jpeg()), ANALYSERS)
    assert [o.analyser for o in outcomes] == [a.name for a in ANALYSERS]
    expected = {
        a.name: "succeeded" if a.unavailable() is None else "unavailable" for a in ANALYSERS
    }
    assert {o.analyser: o.status for o in outcomes} == expected
    by_analyser = {o.analyser: o for o in outcomes}
    assert all(o.error is None for o in outcomes if o.status == "succeeded")
    assert by_analyser["exif"].result is not None
    assert by_analyser["exif"].result["gps"]["longitude"] == pytest.approx(-0.125)
    assert set(by_analyser["derivatives"].files) == {"thumb-256.webp", "thumb-1024.webp"}
    faces = by_analyser["faces"]
    assert faces.result is not None
    assert faces.result["count"] >= 1
    # Each embedded face's thumbnail comes with the pass's files.
    assert set(faces.files) == {face["thumbnail"] for face in faces.result["faces"]}
