"""The list filters as query parameters: one dependency for the routes that take them (the
image list and search)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query

from iap.analysis.models import JobStatus
from iap.images.schemas import MOMENTS, Moment
from iap.images.service import ImageFilters
from iap.text import NO_CONTROL_PATTERN, SingleLine


def image_filters(
    status_: Annotated[
        JobStatus | None, Query(alias="status", description="Analysis status.")
    ] = None,
    tag: Annotated[
        list[SingleLine] | None,
        Query(description="Only images with this tag; repeat to require several."),
    ] = None,
    format_: Annotated[
        str | None,
        Query(
            alias="format",
            max_length=50,
            pattern=NO_CONTROL_PATTERN,
            description="jpeg, png, ... or a MIME type.",
        ),
    ] = None,
    uploaded_after: Annotated[
        Moment | None, Query(description=f"Uploaded at or after this moment. {MOMENTS}")
    ] = None,
    uploaded_before: Annotated[
        Moment | None, Query(description=f"Uploaded before this moment. {MOMENTS}")
    ] = None,
) -> ImageFilters:
    """The list filters, as query parameters (shared by the list and search)."""
    return ImageFilters(
        status=status_,
        tags=tag or [],
        format=format_,
        uploaded_after=uploaded_after,
        uploaded_before=uploaded_before,
    )


Filters = Annotated[ImageFilters, Depends(image_filters)]
