"""Password hashing (argon2id) and the rules a new password must meet."""

from __future__ import annotations

from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from grading_app.errors import BadRequest

MIN_LENGTH = 10
MAX_LENGTH = 256

# argon2-cffi's defaults are RFC 9106's low-memory recommendation for argon2id.
_HASHER = PasswordHasher()


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """Verified against when the account does not exist, so a wrong username costs the
    same time as a wrong password and timing does not tell which accounts exist."""
    return _HASHER.hash("an account that does not exist")


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return (
            _HASHER.verify(password_hash or _dummy_hash(), password) and password_hash is not None
        )
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _HASHER.check_needs_rehash(password_hash)


def check_new_password(password: str, *, username: str) -> None:
    """Refuse passwords that are too short, too long or the username itself."""
    if len(password) < MIN_LENGTH:
        raise BadRequest(f"password: use at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise BadRequest(f"password: use at most {MAX_LENGTH} characters")
    if password.strip().lower() == username.lower():
        raise BadRequest("password: it must not be the username")
    if len(set(password)) < 4:
        raise BadRequest("password: use a mix of at least 4 different characters")
