from __future__ import annotations

from iap.errors import AppError


class HashesNotReady(AppError):
    status = 409
    code = "hashes_not_ready"
    detail = (
        "This image's perceptual hashes are not computed yet (its analysis is queued or "
        "running, failed, or the hashes analyser is off): ask again once its analysis has "
        "succeeded."
    )


class InvalidQuery(AppError):
    status = 422
    code = "invalid_query"
    detail = "This query cannot be searched for."
