"""Analyser results as the API and the pages see them: typed by each analyser's own model.

``AnalysisResults`` has one optional field per analyser in the registry, each an
``AnalyserRun`` of that analyser's result model (``HashesRun`` holds a ``HashesResult``...), so
the OpenAPI document shows every analyser's schema and code reads results as typed objects,
never as dictionaries looked up by name. Adding an analyser to the registry adds its field.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from iap.analysis.analysers import ANALYSERS, find, producing
from iap.analysis.analysers.base import Analyser, AnalyserResult
from iap.analysis.models import AnalysisResult

log = logging.getLogger(__name__)
R = TypeVar("R", bound=AnalyserResult)


class AnalyserRun(BaseModel, Generic[R]):
    """One analyser's latest run on an image."""

    version: int = Field(description="The analyser version that produced this run.")
    status: str = Field(description="succeeded, failed, or unavailable (e.g. no model here).")
    result: R | None = Field(
        description="The analyser's result; null unless it succeeded, and null when it was "
        "recorded by an older version whose result this one no longer reads (`error` says so)."
    )
    error: str | None
    duration_ms: float
    created_at: datetime

    @property
    def found(self) -> R | None:
        """The result, if the run succeeded."""
        return self.result if self.status == "succeeded" else None


def _run_model(analyser: Analyser) -> type[AnalyserRun[Any]]:
    name = analyser.result_model.__name__.removesuffix("Result") + "Run"
    return create_model(
        name,
        __base__=AnalyserRun[analyser.result_model],  # type: ignore[name-defined]
        __doc__=f"The latest run of the `{analyser.name}` analyser (version {analyser.version}).",
    )


RUN_MODELS: dict[str, type[AnalyserRun[Any]]] = {a.name: _run_model(a) for a in ANALYSERS}


class AnalysisResultsBase(BaseModel):
    """Per analyser, its latest run; analysers that have not run are absent."""

    model_config = ConfigDict(frozen=True)

    def runs(self) -> list[tuple[str, AnalyserRun[Any] | None]]:
        """Every analyser in registry order, with its run (None if it has not run)."""
        return [(name, getattr(self, name)) for name in type(self).model_fields]

    def succeeded(self, model: type[R]) -> R | None:
        """The result of the analyser whose result model is ``model``, if it succeeded."""
        run: AnalyserRun[R] | None = getattr(self, producing(model).name)
        return run.found if run is not None else None


if TYPE_CHECKING:
    AnalysisResults = AnalysisResultsBase
else:
    AnalysisResults = create_model(
        "AnalysisResults",
        __base__=AnalysisResultsBase,
        **{
            analyser.name: (
                RUN_MODELS[analyser.name] | None,
                # Absent, not null, when the analyser has not run.
                Field(
                    None,
                    exclude_if=lambda run: run is None,
                    description=f"The `{analyser.name}` analyser's latest run; absent if it "
                    "has not run on this image.",
                ),
            )
            for analyser in ANALYSERS
        },
    )


def analysis_results(rows: Iterable[AnalysisResult]) -> AnalysisResults:
    """Type stored results by their analysers' models. Results of analysers this server no
    longer has are left out; a result whose shape an analyser's newer version no longer reads
    keeps its status and says so instead of failing the request."""
    runs: dict[str, AnalyserRun[Any]] = {}
    for row in rows:
        analyser = find(row.analyser)
        if analyser is None:
            continue
        fields = {
            "version": row.version,
            "status": row.status,
            "result": row.result,
            "error": row.error,
            "duration_ms": row.duration_ms,
            "created_at": row.created_at,
        }
        try:
            runs[analyser.name] = RUN_MODELS[analyser.name].model_validate(fields)
        except ValidationError as exc:
            log.warning(
                "stored %s result (version %d) does not fit the current model: %s",
                analyser.name,
                row.version,
                exc.errors()[0]["msg"],
            )
            fields["result"] = None
            fields["error"] = (
                f"Recorded by version {row.version} of this analyser, whose result this server "
                f"(version {analyser.version}) no longer reads; analyse the image again."
            )
            runs[analyser.name] = RUN_MODELS[analyser.name].model_validate(fields)
    return AnalysisResults(**runs)
