"""Why an export or import stopped. Each error is one line an operator can act on.

``exit_code`` is what ``iap export`` / ``iap import`` exit with: 2 for bad input (the folder,
the archive, a target that is not ready for it), 1 for a failure while the data moved.
"""

from __future__ import annotations


class TransferError(Exception):
    """An export or import cannot go on. Subclasses set ``code`` and ``exit_code``."""

    code: str = "transfer_error"
    exit_code: int = 2

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class ArchiveFolderNotEmpty(TransferError):
    code = "archive_folder_not_empty"


class ArchiveNotFound(TransferError):
    code = "archive_not_found"


class ArchiveInvalid(TransferError):
    """The folder is not a complete archive, or its manifest or index cannot be read."""

    code = "archive_invalid"


class UnsupportedFormat(TransferError):
    code = "unsupported_archive_format"


class SchemaMismatch(TransferError):
    code = "schema_mismatch"


class ChecksumMismatch(TransferError):
    code = "checksum_mismatch"


class TargetNotEmpty(TransferError):
    code = "target_not_empty"


class TransferFailed(TransferError):
    """The source or the target failed while data was moving (a missing blob, a refused row)."""

    code = "transfer_failed"
    exit_code = 1
