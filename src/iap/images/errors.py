from __future__ import annotations

from iap.errors import AppError, Forbidden, NotFound


class ImageNotFound(NotFound):
    code = "image_not_found"
    detail = "No image has that id."


class NotImageOwner(Forbidden):
    code = "not_image_owner"
    detail = "This image belongs to another user."


class UploadTooLarge(AppError):
    status = 413
    code = "file_too_large"


class UnsupportedImageType(AppError):
    status = 415
    code = "unsupported_image_type"


class ExpectedMultipart(AppError):
    status = 415
    code = "expected_multipart"
    detail = "Send the image as multipart/form-data with the file in a field named 'file'."


class InvalidMultipart(AppError):
    status = 400
    code = "invalid_multipart"


class FileRequired(AppError):
    status = 422
    code = "file_required"
    detail = "The form has no file: send the image in a multipart field named 'file'."


class EmptyFile(AppError):
    status = 422
    code = "empty_file"
    detail = "The uploaded file is empty."


class TooManyPixels(AppError):
    status = 422
    code = "too_many_pixels"


class CorruptImage(AppError):
    status = 422
    code = "corrupt_image"


class ReadOnlyField(AppError):
    status = 422
    code = "read_only_field"


class UnknownField(AppError):
    status = 422
    code = "unknown_field"


class RangeNotSatisfiable(AppError):
    status = 416
    code = "range_not_satisfiable"


class InvalidField(AppError):
    status = 422
    code = "invalid_field"


# Every route of one image: another user's image or an unknown id.
OWNED_IMAGE: tuple[type[AppError], ...] = (NotImageOwner, ImageNotFound)


class InvalidCursor(AppError):
    status = 422
    code = "invalid_cursor"
    detail = (
        "This cursor is not one this list gave out: pass the next_cursor of the page before, "
        "unchanged, or start from the first page without a cursor."
    )
