"""Reading an upload request: the multipart body is streamed to a temporary file under a byte
cap, so an oversized upload is cut off as soon as it crosses the limit, never held in memory."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import BinaryIO

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from iap.images.errors import (
    ExpectedMultipart,
    FileRequired,
    InvalidField,
    InvalidMultipart,
    UploadTooLarge,
)
from iap.images.schemas import MAX_DESCRIPTION, MAX_TAGS, normalise_tags
from iap.text import has_control

# Room for the multipart framing and the small text fields around the file.
FORM_OVERHEAD_BYTES = 64 * 1024


@dataclass
class UploadForm:
    file: BinaryIO
    filename: str | None
    tags: list[str]
    description: str | None

    def close(self) -> None:
        self.file.close()


def _too_large(limit: int) -> UploadTooLarge:
    return UploadTooLarge(f"The file is larger than the upload limit of {limit:,} bytes.")


async def _capped(request: Request, cap: int, limit: int) -> AsyncGenerator[bytes, None]:
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > cap:
            raise _too_large(limit)
        yield chunk


async def read_upload_form(request: Request, max_bytes: int) -> UploadForm:
    """Parse ``file`` (required), ``tags`` (repeatable, comma-separated) and ``description``."""
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise ExpectedMultipart()
    cap = max_bytes + FORM_OVERHEAD_BYTES
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > cap:
        raise _too_large(max_bytes)  # refused before a byte of the body is read
    parser = MultiPartParser(
        request.headers,
        _capped(request, cap, max_bytes),
        max_files=1,
        max_fields=20,
        max_part_size=MAX_DESCRIPTION * 4,
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise InvalidMultipart(f"The multipart body could not be read: {exc}") from None
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        await form.close()
        raise FileRequired()
    if _file_size(upload.file) > max_bytes:  # the body cap above allows for the framing
        await form.close()
        raise _too_large(max_bytes)
    try:
        tags = _form_tags(form.getlist("tags"))
        description = form.get("description")
        if not isinstance(description, str) or not description.strip():
            description = None
        elif len(description) > MAX_DESCRIPTION:
            raise InvalidField(f"The description is longer than {MAX_DESCRIPTION} characters.")
        elif has_control(description, allow_whitespace=True):
            raise InvalidField("The description contains control characters.")
    except InvalidField:
        await form.close()
        raise
    return UploadForm(
        file=upload.file, filename=upload.filename, tags=tags, description=description
    )


def _form_tags(values: list[str | UploadFile]) -> list[str]:
    tags = normalise_tags(
        [
            part.strip().lower()
            for value in values
            if isinstance(value, str)
            for part in value.split(",")
        ]
    )
    if len(tags) > MAX_TAGS:
        raise InvalidField(f"At most {MAX_TAGS} tags are allowed.")
    if any(len(tag) > 50 for tag in tags):
        raise InvalidField("A tag is at most 50 characters long.")
    if any(has_control(tag) for tag in tags):
        raise InvalidField("Tags cannot contain control characters.")
    return tags


def _file_size(handle: BinaryIO) -> int:
    handle.seek(0, 2)
    size = handle.tell()
    handle.seek(0)
    return size
