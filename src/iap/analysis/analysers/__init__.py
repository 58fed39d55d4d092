"""The analyser registry: every analyser the platform runs, cheap ones first."""

from __future__ import annotations

from collections.abc import Iterable

from iap.analysis.analysers.base import Analyser, AnalyserResult
from iap.analysis.analysers.colours import ColoursAnalyser
from iap.analysis.analysers.derivatives import DerivativesAnalyser
from iap.analysis.analysers.exif import ExifAnalyser
from iap.analysis.analysers.faces import FacesAnalyser
from iap.analysis.analysers.hashes import HashesAnalyser
from iap.analysis.analysers.properties import PropertiesAnalyser
from iap.analysis.analysers.quality import QualityAnalyser
from iap.analysis.analysers.text import TextAnalyser

ANALYSERS: tuple[Analyser, ...] = (
    PropertiesAnalyser(),
    ExifAnalyser(),
    HashesAnalyser(),
    ColoursAnalyser(),
    QualityAnalyser(),
    DerivativesAnalyser(),
    FacesAnalyser(),
    TextAnalyser(),
)

_BY_NAME: dict[str, Analyser] = {analyser.name: analyser for analyser in ANALYSERS}


def by_name(names: Iterable[str]) -> list[Analyser]:
    """The analysers called ``names``, in registry order, each once.

    Raises ``KeyError`` whose argument lists the unknown names (comma-separated).
    """
    wanted = set(names)
    unknown = sorted(wanted - _BY_NAME.keys())
    if unknown:
        raise KeyError(", ".join(unknown))
    return [analyser for analyser in ANALYSERS if analyser.name in wanted]


def find(name: str) -> Analyser | None:
    """The analyser called ``name``, if this server has one."""
    return _BY_NAME.get(name)


def producing(model: type[AnalyserResult]) -> Analyser:
    """The analyser whose results are ``model``s."""
    for analyser in ANALYSERS:
        if analyser.result_model is model:
            return analyser
    raise LookupError(f"no analyser produces {model.__name__}")
