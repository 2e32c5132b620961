"""One error hierarchy: expected failures carry an HTTP status and a message a person can act on."""


class AppError(Exception):
    status_code = 500

    def __init__(
        self,
        message: str,
        status_code: int | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers
        if status_code is not None:
            self.status_code = status_code


class BadRequest(AppError):
    status_code = 400


class NotSignedIn(AppError):
    """No credentials, or credentials that are not (or no longer) valid."""

    status_code = 401


class Forbidden(AppError):
    """Signed in, but this account may not do this (to an item it may see)."""

    status_code = 403


class NotFound(AppError):
    status_code = 404


class Conflict(AppError):
    """An illegal state transition or a clash with existing data."""

    status_code = 409


class DatabaseUnavailable(AppError):
    status_code = 503
