from __future__ import annotations

from iap.errors import AppError, NotFound


class UnknownAnalyser(AppError):
    status = 422
    code = "unknown_analyser"


class ThumbnailNotReady(NotFound):
    code = "thumbnail_not_ready"
    detail = "The thumbnail has not been made yet; it appears when the analysis has succeeded."


class JobNotFound(NotFound):
    code = "job_not_found"
    detail = "No analysis job has that id."


class JobNotFailed(AppError):
    status = 409
    code = "job_not_failed"
    detail = "Only failed jobs can be retried."
