"""Passwords, tokens, secret encryption, the failed-login limiter and the generated SECRET_KEY."""

from __future__ import annotations

import stat
import time
import uuid
from pathlib import Path

import pytest

from backend.config import Settings, get_settings, reset_settings
from backend.security import crypto, passwords, tokens
from backend.security.ratelimit import MemoryFailureLimiter, RedisFailureLimiter


def test_password_hashes_verify_only_the_right_password() -> None:
    hashed = passwords.hash_password("correct horse")
    assert hashed.startswith("$argon2id$")
    assert passwords.verify_password(hashed, "correct horse")
    assert not passwords.verify_password(hashed, "wrong horse")
    assert not passwords.verify_password(None, "correct horse")  # an unknown user never verifies
    assert not passwords.verify_password("not a hash", "correct horse")


def test_access_token_round_trip_and_refusals() -> None:
    token = tokens.create_access_token(secret_key="k1", user_id=7, session_id="s1", ttl_seconds=60)
    claims = tokens.decode_access_token(token, secret_key="k1")
    assert (claims.user_id, claims.session_id) == (7, "s1")
    with pytest.raises(tokens.InvalidToken):
        tokens.decode_access_token(token, secret_key="k2")
    with pytest.raises(tokens.InvalidToken):
        tokens.decode_access_token(token[:-2] + ("AA" if token[-2:] != "AA" else "BB"), secret_key="k1")
    expired = tokens.create_access_token(secret_key="k1", user_id=7, session_id="s1", ttl_seconds=-1)
    with pytest.raises(tokens.InvalidToken):
        tokens.decode_access_token(expired, secret_key="k1")
    for garbage in ("", "a.b", "a.b.c", "lpt_whatever"):
        with pytest.raises(tokens.InvalidToken):
            tokens.decode_access_token(garbage, secret_key="k1")


def test_opaque_tokens_are_random_and_hashed() -> None:
    first, second = tokens.new_opaque_token("lpt_"), tokens.new_opaque_token("lpt_")
    assert first != second and first.startswith("lpt_") and len(first) > 40
    assert tokens.hash_token(first) == tokens.hash_token(first) != tokens.hash_token(second)


def test_secrets_encrypt_and_refuse_another_key() -> None:
    ciphertext = crypto.encrypt_secret("sk-live-123456", secret_key="one")
    assert "sk-live" not in ciphertext
    assert crypto.decrypt_secret(ciphertext, secret_key="one") == "sk-live-123456"
    with pytest.raises(crypto.DecryptionFailed):
        crypto.decrypt_secret(ciphertext, secret_key="two")
    assert crypto.mask_secret("sk-live-123456") == "sk-…3456"
    assert crypto.mask_secret("short") == "••••"


def test_secret_key_is_generated_once_private_and_reused(isolated_settings: Path) -> None:
    key = get_settings().effective_secret_key
    path = isolated_settings / "secret_key"
    assert path.read_text().strip() == key and len(key) >= 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    reset_settings()  # a restart
    assert get_settings().effective_secret_key == key


def test_secret_key_from_the_environment_wins(monkeypatch: pytest.MonkeyPatch, isolated_settings: Path) -> None:
    monkeypatch.setenv("SECRET_KEY", "from-the-environment")
    reset_settings()
    assert get_settings().effective_secret_key == "from-the-environment"
    assert not (isolated_settings / "secret_key").exists()


def test_database_defaults_to_sqlite_in_data_dir(isolated_settings: Path) -> None:
    settings = Settings()
    assert settings.effective_database_url == f"sqlite:///{isolated_settings / 'portal.db'}"
    assert (settings.host, settings.port, settings.allow_registration) == ("127.0.0.1", 8080, True)


def test_memory_limiter_locks_after_the_limit_and_frees_after_the_window() -> None:
    limiter = MemoryFailureLimiter(limit=3, window_seconds=0.5)
    for _ in range(2):
        limiter.record_failure("user:a")
    assert limiter.retry_after("user:a") == 0
    limiter.record_failure("user:a")
    assert limiter.retry_after("user:a") >= 1
    assert limiter.retry_after("user:b") == 0
    time.sleep(0.6)
    assert limiter.retry_after("user:a") == 0
    limiter.record_failure("user:a")
    limiter.reset("user:a")
    assert limiter.retry_after("user:a") == 0


def test_redis_limiter_is_shared_between_instances(redis_url: str) -> None:
    prefix = f"llmportal-test:{uuid.uuid4().hex}:"
    one = RedisFailureLimiter(redis_url, limit=3, window_seconds=60, prefix=prefix)
    two = RedisFailureLimiter(redis_url, limit=3, window_seconds=60, prefix=prefix)
    one.record_failure("ip:10.0.0.1")
    two.record_failure("ip:10.0.0.1")
    assert one.retry_after("ip:10.0.0.1") == 0
    two.record_failure("ip:10.0.0.1")
    wait = one.retry_after("ip:10.0.0.1")  # the other instance sees the lock
    assert 55 <= wait <= 60
    one.reset("ip:10.0.0.1")
    assert two.retry_after("ip:10.0.0.1") == 0
