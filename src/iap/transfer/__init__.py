"""Moving an install's data to another install: from the embedded deployment (SQLite, local
files) to the scaled one (PostgreSQL, S3), or between any two, through an archive folder.

``iap export DIR`` and ``iap import DIR`` are thin wrappers around ``export_install``,
``open_archive`` and ``import_install``; the format is described in ``iap.transfer.archive``.
"""

from iap.transfer.archive import FORMAT_VERSION, Manifest
from iap.transfer.errors import (
    ArchiveFolderNotEmpty,
    ArchiveInvalid,
    ArchiveNotFound,
    ChecksumMismatch,
    SchemaMismatch,
    TargetNotEmpty,
    TransferError,
    TransferFailed,
    UnsupportedFormat,
)
from iap.transfer.progress import NO_PROGRESS, RichProgress, TransferProgress
from iap.transfer.service import (
    Archive,
    TransferSummary,
    export_install,
    import_install,
    open_archive,
    verify_archive,
)

__all__ = [
    "FORMAT_VERSION",
    "NO_PROGRESS",
    "Archive",
    "ArchiveFolderNotEmpty",
    "ArchiveInvalid",
    "ArchiveNotFound",
    "ChecksumMismatch",
    "Manifest",
    "RichProgress",
    "SchemaMismatch",
    "TargetNotEmpty",
    "TransferError",
    "TransferFailed",
    "TransferProgress",
    "TransferSummary",
    "UnsupportedFormat",
    "export_install",
    "import_install",
    "open_archive",
    "verify_archive",
]
