"""Encryption at rest of pool credentials (Fernet, from the ``cryptography`` package).

The key comes from ``settings.POOL_CREDENTIALS_KEY`` (environment ``XOWEB_CREDENTIALS_KEY``, a
Fernet key as printed by ``Fernet.generate_key()``). When it is not set, a key is derived from
``SECRET_KEY``, so a new checkout works with no configuration; rotating ``SECRET_KEY`` then makes
stored passwords unreadable, and they must be entered again.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


class CredentialsUnreadable(Exception):
    """A stored secret cannot be decrypted with the current key."""


def _fernet() -> Fernet:
    key = getattr(settings, "POOL_CREDENTIALS_KEY", "")
    if not key:
        digest = hashlib.sha256(b"xoweb pool credentials\0" + settings.SECRET_KEY.encode()).digest()
        key = base64.urlsafe_b64encode(digest).decode()
    return Fernet(key)


def encrypt_secret(secret: str) -> str:
    return _fernet().encrypt(secret.encode()).decode()


def decrypt_secret(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise CredentialsUnreadable(
            "the stored password cannot be decrypted with the current key "
            "(XOWEB_CREDENTIALS_KEY or SECRET_KEY changed?): enter the password again"
        ) from None
