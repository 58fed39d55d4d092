"""Administration (role ``admin``): users, failed jobs and figures."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from iap.admin import service
from iap.admin.errors import CannotDisableSelf
from iap.admin.schemas import StatsOut, UserPage, UserStatusIn
from iap.analysis import service as analysis_service
from iap.analysis.errors import JobNotFailed, JobNotFound
from iap.analysis.schemas import FailedJob, FailedJobPage, RetryOut
from iap.analysis.tasks import dispatch
from iap.auth import service as auth_service
from iap.auth.deps import ADMIN, ADMIN_CHANGES, AdminUser
from iap.auth.errors import UserNotFound
from iap.auth.schemas import UserOut
from iap.deps import AppServices, DbSession
from iap.errors import error_responses
from iap.images.schemas import MAX_PAGE, AnalysisSummary
from iap.text import NO_CONTROL_PATTERN

router = APIRouter(prefix="/admin", tags=["admin"])


@router.get("/stats", response_model=StatsOut, responses=error_responses(*ADMIN))
async def get_stats(admin: AdminUser, session: DbSession) -> StatsOut:
    """Accounts, images, stored bytes and analysis jobs by status, right now."""
    return await service.stats(session)


@router.get("/users", response_model=UserPage, responses=error_responses(*ADMIN))
async def list_users(
    admin: AdminUser,
    session: DbSession,
    skip: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    q: Annotated[
        str | None,
        Query(
            max_length=254,
            pattern=NO_CONTROL_PATTERN,
            description="Only accounts whose username or email contains this (any case).",
        ),
    ] = None,
) -> UserPage:
    """Every account (or those matching ``q``), oldest first."""
    total, users = await auth_service.list_users(session, page=skip, limit=limit, search=q)
    return UserPage(
        total=total, skip=skip, limit=limit, data=[UserOut.model_validate(u) for u in users]
    )


@router.patch(
    "/users/{user_id}",
    response_model=UserOut,
    responses=error_responses(*ADMIN_CHANGES, UserNotFound, CannotDisableSelf),
)
async def set_user_status(
    user_id: uuid.UUID, body: UserStatusIn, admin: AdminUser, session: DbSession
) -> UserOut:
    """Disable (or re-enable) an account. A disabled user's tokens and API keys stop working at
    once and their refresh tokens are revoked."""
    user = await service.set_user_status(session, admin, user_id, active=body.is_active)
    return UserOut.model_validate(user)


@router.get("/jobs/failed", response_model=FailedJobPage, responses=error_responses(*ADMIN))
async def list_failed_jobs(
    admin: AdminUser,
    session: DbSession,
    skip: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> FailedJobPage:
    """Dead analysis jobs (every retry used up), newest first, with their errors."""
    total, rows = await analysis_service.failed_jobs(session, page=skip, limit=limit)
    data = [
        FailedJob(
            job=AnalysisSummary.model_validate(job),
            image_id=image.id,
            user_id=image.user_id,
            original_filename=image.original_filename,
        )
        for job, image in rows
    ]
    return FailedJobPage(total=total, skip=skip, limit=limit, data=data)


@router.post(
    "/jobs/failed/retry", response_model=RetryOut, responses=error_responses(*ADMIN_CHANGES)
)
async def retry_all_failed(admin: AdminUser, session: DbSession, services: AppServices) -> RetryOut:
    """Queue every failed job again."""
    retried = await analysis_service.retry_failed(session, services.cache, None)
    await dispatch(session, services.queue, services.notifier, retried)
    return RetryOut(retried=[queued.job_id for queued in retried])


@router.post(
    "/jobs/{job_id}/retry",
    response_model=RetryOut,
    responses=error_responses(*ADMIN_CHANGES, JobNotFound, JobNotFailed),
)
async def retry_job(
    job_id: uuid.UUID, admin: AdminUser, session: DbSession, services: AppServices
) -> RetryOut:
    """Queue one failed job again (its attempts start from zero)."""
    retried = await analysis_service.retry_job(session, services.cache, job_id)
    await dispatch(session, services.queue, services.notifier, retried)
    return RetryOut(retried=[queued.job_id for queued in retried])
