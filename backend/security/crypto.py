"""Encryption of secrets at rest (provider API keys): Fernet with a key derived from SECRET_KEY."""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class DecryptionFailed(Exception):
    """The ciphertext was made with another SECRET_KEY or was altered."""


def _fernet(secret_key: str) -> Fernet:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"llm-portal", info=b"secrets-at-rest").derive(
        secret_key.encode()
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def encrypt_secret(plaintext: str, *, secret_key: str) -> str:
    return _fernet(secret_key).encrypt(plaintext.encode()).decode()


def decrypt_secret(ciphertext: str, *, secret_key: str) -> str:
    try:
        return _fernet(secret_key).decrypt(ciphertext.encode()).decode()
    except InvalidToken as error:
        raise DecryptionFailed("the secret cannot be decrypted with the current SECRET_KEY") from error


def mask_secret(plaintext: str) -> str:
    """What a page shows of a key: enough to recognise it, never enough to use it."""
    if len(plaintext) <= 8:
        return "••••"
    return f"{plaintext[:3]}…{plaintext[-4:]}"
