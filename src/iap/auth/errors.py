from __future__ import annotations

from iap.errors import AppError, Forbidden, NotFound

_BEARER = {"WWW-Authenticate": "Bearer"}


class NotAuthenticated(AppError):
    status = 401
    code = "not_authenticated"
    detail = "Authentication required: send 'Authorization: Bearer <token>' or an API key."

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers=_BEARER)


class InvalidToken(NotAuthenticated):
    code = "invalid_token"
    detail = "The token is invalid or has expired; log in again or refresh it."


class InvalidCredentials(NotAuthenticated):
    code = "invalid_credentials"
    detail = "Incorrect username or password."


class AccountDisabled(Forbidden):
    code = "account_disabled"
    detail = "This account is disabled; contact an administrator."


class AdminRequired(Forbidden):
    code = "admin_required"
    detail = "This action needs the admin role."


class UsernameTaken(AppError):
    status = 400
    code = "username_taken"
    detail = "That username is already registered; pick another."


class EmailTaken(AppError):
    status = 400
    code = "email_taken"
    detail = "That email address is already registered."


class WrongPassword(AppError):
    status = 400
    code = "wrong_password"
    detail = "The current password is not correct."


class ApiKeyNotFound(NotFound):
    detail = "You have no API key with that id."


class UserNotFound(NotFound):
    detail = "No user has that id."
