"""Image routes: upload, list, read, edit, delete, download. Every route checks the owner."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncGenerator
from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Body, Depends, Query, Request, Response, status
from fastapi.responses import RedirectResponse, StreamingResponse

from iap.analysis.service import Queued
from iap.analysis.tasks import dispatch
from iap.auth.deps import SIGNED_IN, SIGNED_IN_CHANGES, CurrentUser
from iap.deps import AppServices, DbSession, Throttle, throttle
from iap.errors import RateLimited, error_responses
from iap.images import service
from iap.images.errors import (
    OWNED_IMAGE,
    CorruptImage,
    EmptyFile,
    ExpectedMultipart,
    FileRequired,
    InvalidCursor,
    InvalidField,
    InvalidMultipart,
    RangeNotSatisfiable,
    ReadOnlyField,
    TooManyPixels,
    UnknownField,
    UnsupportedImageType,
    UploadTooLarge,
)
from iap.images.filenames import clean_filename, content_disposition
from iap.images.filter_params import Filters
from iap.images.http_range import parse_range
from iap.images.inspection import ALLOWED_FORMATS, inspect_image
from iap.images.pagination import MAX_CURSOR
from iap.images.schemas import (
    MAX_PAGE,
    READ_ONLY_FIELDS,
    ImageOut,
    ImagePage,
    ImageUpdate,
    SortKey,
)
from iap.images.upload_form import read_upload_form
from iap.storage import BlobNotFound, StorageUnavailable
from iap.text import NO_CONTROL_PATTERN, PROSE_PATTERN

router = APIRouter(prefix="/image", tags=["images"])

ImageId = Annotated[uuid.UUID, "the image's UUID"]


_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "The image."},
                        "tags": {
                            "type": "string",
                            "pattern": NO_CONTROL_PATTERN,
                            "description": "Comma-separated tags (the field may also repeat).",
                            "example": "holiday,sea",
                        },
                        "description": {
                            "type": "string",
                            "maxLength": 10000,
                            "pattern": PROSE_PATTERN,
                        },
                    },
                }
            }
        },
    }
}


UploadThrottle = Annotated[
    Throttle, Depends(throttle(lambda settings: settings.upload_rate_limit, "uploads"))
]


async def limit_uploads(user: CurrentUser, limit: UploadThrottle) -> None:
    """Route dependency: 429 past ``IAP_UPLOAD_RATE_LIMIT`` uploads for this user."""
    await limit.check(f"upload:{user.id}")


@router.post(
    "/upload",
    status_code=status.HTTP_201_CREATED,
    response_model=ImageOut,
    openapi_extra=_UPLOAD_BODY,
    responses=error_responses(
        *SIGNED_IN_CHANGES,
        InvalidMultipart,
        UploadTooLarge,
        UnsupportedImageType,
        ExpectedMultipart,
        FileRequired,
        EmptyFile,
        CorruptImage,
        TooManyPixels,
        InvalidField,
        RateLimited,
        StorageUnavailable,
    ),
    dependencies=[Depends(limit_uploads)],
)
async def upload_image(
    request: Request, user: CurrentUser, session: DbSession, services: AppServices
) -> ImageOut:
    """Upload one image (multipart field ``file``) with optional ``tags`` and ``description``.

    The type is read from the file's bytes (JPEG, PNG, WebP, GIF, TIFF, BMP, HEIF/HEIC, AVIF),
    never from its name. Size, pixel count and integrity are checked before anything is stored;
    width, height, type, size and SHA-256 are computed here. The image is queued for analysis.
    """
    settings = services.settings
    form = await read_upload_form(request, settings.max_upload_bytes)
    try:
        async with services.decode_slots:
            facts = await to_thread.run_sync(
                lambda: inspect_image(
                    form.file,
                    max_pixels=settings.max_image_pixels,
                    max_side=settings.max_image_side,
                )
            )
        image = await service.create_image(
            session,
            services.storage,
            owner=user,
            source=form.file,
            facts=facts,
            filename=clean_filename(form.filename, facts.format),
            tags=form.tags,
            description=form.description,
        )
    finally:
        await to_thread.run_sync(form.close)
    if image.job is not None:
        queued = Queued(image.job.id, image.id, user.id)
        await dispatch(session, services.queue, services.notifier, [queued])
    return ImageOut.model_validate(image)


@router.get("/all", response_model=ImagePage, responses=error_responses(*SIGNED_IN, InvalidCursor))
async def list_images(
    user: CurrentUser,
    session: DbSession,
    filters: Filters,
    skip: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page number, starting at 1.")] = 1,
    limit: Annotated[int, Query(ge=1, le=100, description="Images per page.")] = 20,
    q: Annotated[
        str | None,
        Query(
            max_length=200,
            pattern=NO_CONTROL_PATTERN,
            description="Text in the filename, description or tags (a plain substring; "
            "`/image/search` searches every field by word, ranked).",
        ),
    ] = None,
    sort: SortKey = SortKey.UPLOAD_DATE_DESC,
    cursor: Annotated[
        str | None,
        Query(
            max_length=MAX_CURSOR,
            description="The `next_cursor` of the page before: the page after it, as fast deep "
            "in the list as at its start (no total is counted). Not with `skip`.",
        ),
    ] = None,
) -> ImagePage:
    """Your images, a page at a time, newest first unless ``sort`` says otherwise. Ties are
    broken by id, so pages never overlap or skip. Page by number (``skip``, 1-based, with the
    ``total``), or follow each page's ``next_cursor`` (keyset paging, for deep lists)."""
    if cursor is not None and skip != 1:
        raise InvalidCursor("Give either skip (a page number) or cursor, not both.")
    filters = dataclasses.replace(filters, text=q)
    found = await service.list_images(
        session, user, filters, page=skip, limit=limit, sort=sort, cursor=cursor
    )
    return ImagePage(
        total=found.total,
        skip=skip,
        limit=limit,
        data=[ImageOut.model_validate(r) for r in found.rows],
        next_cursor=found.next_cursor,
    )


# The original's own type: one of the formats an upload may have.
_ORIGINAL = {"schema": {"type": "string", "format": "binary"}}
ORIGINAL_CONTENT = {mime: _ORIGINAL for mime in sorted(set(ALLOWED_FORMATS.values()))}


_DOWNLOAD: dict[str, Any] = {
    "response_class": Response,
    "responses": {
        200: {"description": "The original file", "content": ORIGINAL_CONTENT},
        206: {"description": "Partial content", "content": ORIGINAL_CONTENT},
        304: {"description": "Not modified"},
        307: {"description": "Redirect to a presigned URL (S3 only, when enabled)"},
        **error_responses(
            *SIGNED_IN, *OWNED_IMAGE, RangeNotSatisfiable, BlobNotFound, StorageUnavailable
        ),
    },
}


@router.get("/download/{image_id}", **_DOWNLOAD)
@router.head("/download/{image_id}", **_DOWNLOAD)
async def download_image(
    image_id: uuid.UUID,
    request: Request,
    user: CurrentUser,
    session: DbSession,
    services: AppServices,
) -> Response:
    """The original file, byte for byte, with its type, original filename and ``ETag``.
    ``Range: bytes=...`` requests get a 206 with that part. ``HEAD`` answers the same headers
    and status, without the body."""
    image = await service.get_owned_image(session, user, image_id)
    settings = services.settings
    disposition = content_disposition(image.original_filename)
    if settings.s3_presign_downloads:
        url = services.storage.presigned_url(
            image.storage_key,
            filename_header=disposition,
            content_type=image.file_type,
            ttl_seconds=settings.s3_presign_ttl_seconds,
        )
        if url:
            return RedirectResponse(url, status_code=status.HTTP_307_TEMPORARY_REDIRECT)
    etag = f'"{image.sha256}"'
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Content-Disposition": disposition,
        "Cache-Control": "private, no-cache",
        "Content-Security-Policy": "default-src 'none'; sandbox",
    }
    if etag in _etags(request.headers.get("if-none-match")):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    wanted = parse_range(request.headers.get("range"), image.file_size)
    if_range = request.headers.get("if-range")
    if wanted is not None and if_range is not None and if_range.strip() != etag:
        wanted = None  # the client's copy is stale: send the whole file
    start, end = wanted if wanted else (0, image.file_size - 1)
    chunks = services.storage.read(image.storage_key, start, end)
    try:
        first = await anext(chunks, b"")  # a missing blob fails here, before any header is sent
    except BlobNotFound:
        raise BlobNotFound(
            "The stored original of this image is missing; delete the image and upload it again."
        ) from None

    headers["Content-Length"] = str(end - start + 1)
    if wanted:
        headers["Content-Range"] = f"bytes {start}-{end}/{image.file_size}"
    code = status.HTTP_206_PARTIAL_CONTENT if wanted else status.HTTP_200_OK
    if request.method == "HEAD":
        if isinstance(chunks, AsyncGenerator):
            await chunks.aclose()  # its first chunk proved the blob is there; no more is read
        return Response(status_code=code, media_type=image.file_type, headers=headers)

    async def body() -> Any:
        yield first
        async for chunk in chunks:
            yield chunk

    return StreamingResponse(body(), status_code=code, media_type=image.file_type, headers=headers)


def _etags(header: str | None) -> set[str]:
    if not header:
        return set()
    return {tag.strip().removeprefix("W/") for tag in header.split(",")}


@router.get(
    "/{image_id}", response_model=ImageOut, responses=error_responses(*SIGNED_IN, *OWNED_IMAGE)
)
async def get_image(
    image_id: uuid.UUID, user: CurrentUser, session: DbSession, services: AppServices
) -> ImageOut:
    """One image's metadata and analysis status."""
    return await service.read_image(
        session, services.cache, user, image_id, services.settings.cache_ttl_seconds
    )


@router.put(
    "/{image_id}",
    response_model=ImageOut,
    responses=error_responses(*SIGNED_IN_CHANGES, *OWNED_IMAGE, ReadOnlyField, UnknownField),
)
async def update_image(
    image_id: uuid.UUID,
    body: Annotated[ImageUpdate, Body()],
    user: CurrentUser,
    session: DbSession,
    services: AppServices,
) -> ImageOut:
    """Edit ``original_filename``, ``tags`` (replaces the list) or ``description`` (null clears
    it). Derived fields (width, height, size, type, hash, dates) cannot be changed: sending one is
    a 422 ``read_only_field``."""
    extra = set(body.model_extra or {})
    if read_only := sorted(extra & READ_ONLY_FIELDS):
        raise ReadOnlyField(
            "These fields are computed by the server and cannot be changed: "
            f"{', '.join(read_only)}."
        )
    if extra:
        raise UnknownField(
            f"Unknown fields: {', '.join(sorted(extra))}. "
            "Editable: original_filename, tags, description."
        )
    image = await service.update_image(
        session,
        services.cache,
        user,
        image_id,
        filename=clean_filename(body.original_filename) if body.original_filename else None,
        tags=body.tags,
        description=body.description,
        description_set="description" in body.model_fields_set,
    )
    return ImageOut.model_validate(image)


@router.delete(
    "/{image_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(*SIGNED_IN_CHANGES, *OWNED_IMAGE),
)
async def delete_image(
    image_id: uuid.UUID, user: CurrentUser, session: DbSession, services: AppServices
) -> Response:
    """Delete the image: its row, stored original, analysis and cache entries."""
    await service.delete_image(session, services.storage, services.cache, user, image_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
