"""What an analyser is: a named, versioned, pure function of a ``DecodedImage``.

An analyser returns an ``Output``: a pydantic result (its schema is the analyser's contract
with API clients) and, for analysers that make derivatives, files for the worker to store.
It does no I/O of its own. A model-based analyser whose model is not installed reports why
through ``unavailable()`` and is skipped with that status instead of failing the pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from pydantic import BaseModel, ConfigDict

from iap.analysis.decode import DecodedImage


class AnalyserResult(BaseModel):
    """Base of every analyser's result schema."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class DerivedFile:
    data: bytes
    content_type: str


@dataclass(frozen=True)
class Output:
    result: AnalyserResult
    # Derivative name (e.g. "thumb-256.webp") -> file; stored under the image by the worker.
    files: Mapping[str, DerivedFile] = field(default_factory=dict)


class Analyser(Protocol):
    name: ClassVar[str]
    version: ClassVar[int]
    result_model: ClassVar[type[AnalyserResult]]

    def unavailable(self) -> str | None:
        """None when the analyser can run here; otherwise the reason (e.g. a missing model)."""
        ...

    def analyse(self, image: DecodedImage) -> Output: ...
