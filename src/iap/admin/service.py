"""Administration: figures (accounts, images, the analysis queue) and account status."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from iap.admin.errors import CannotDisableSelf
from iap.admin.schemas import StatsOut
from iap.analysis.models import AnalysisJob, JobStatus
from iap.auth import service as auth_service
from iap.auth.models import Role, User
from iap.images.models import Image


async def stats(session: AsyncSession) -> StatsOut:
    users, active, admins = (
        await session.execute(
            select(
                func.count(),
                func.count().filter(User.is_active.is_(True)),
                func.count().filter(User.role == Role.ADMIN),
            ).select_from(User)
        )
    ).one()
    images, stored = (
        await session.execute(select(func.count(), func.sum(Image.file_size)).select_from(Image))
    ).one()
    by_status = dict.fromkeys((s.value for s in JobStatus), 0)
    for status, count in await session.execute(
        select(AnalysisJob.status, func.count()).group_by(AnalysisJob.status)
    ):
        by_status[JobStatus(status).value] = count
    return StatsOut(
        users=users,
        active_users=active,
        admins=admins,
        images=images,
        stored_bytes=int(stored or 0),
        jobs=by_status,
    )


async def set_user_status(
    session: AsyncSession, admin: User, user_id: uuid.UUID, *, active: bool
) -> User:
    """Disable or re-enable an account; an admin cannot lock themselves out."""
    if user_id == admin.id and not active:
        raise CannotDisableSelf()
    return await auth_service.set_user_active(session, user_id, active)
