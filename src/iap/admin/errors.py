from __future__ import annotations

from iap.errors import AppError


class CannotDisableSelf(AppError):
    status = 400
    code = "cannot_disable_self"
    detail = "Admins cannot disable their own account."
