"""ALMANAC_REDIS_URL: checked in one line, and its password never shown (almanac.settings)."""

from __future__ import annotations

import pytest

from almanac.errors import AlmanacError
from almanac.settings import get_settings, mask_url, redis_url


@pytest.mark.parametrize("url,shown", [
    ("redis://:hunter2@db.example:6380/2", "redis://:***@db.example:6380/2"),
    ("redis://lab:hunter2@10.0.0.5/0", "redis://lab:***@10.0.0.5/0"),
    ("rediss://:p%40ss@host:6379/0", "rediss://:***@host:6379/0"),
    ("redis://localhost:6379/0", "redis://localhost:6379/0"),
    ("", ""),
])
def test_mask_url(url, shown):
    assert mask_url(url) == shown


def test_unset_is_the_embedded_default(monkeypatch):
    monkeypatch.delenv("ALMANAC_REDIS_URL", raising=False)
    assert get_settings().redis_url is None


@pytest.mark.parametrize("text", ["http://:hunter2@host:6379/0", "redis://:hunter2@host:99999/0",
                                  "redis://:hunter2@host:6379/db", "redis://:hunter2@/0"])
def test_a_bad_url_is_one_line_without_the_password(monkeypatch, text):
    monkeypatch.setenv("ALMANAC_REDIS_URL", text)
    with pytest.raises(AlmanacError) as err:
        get_settings()
    message = err.value.message
    assert "hunter2" not in message and "\n" not in message
    assert message.startswith("ALMANAC_REDIS_URL=") and message.endswith(
        "is not a Redis URL: give e.g. redis://localhost:6379/0 or redis://:PASSWORD@host:6379/0, or unset it")


def test_a_good_url_is_kept_as_given():
    assert redis_url("redis://:pw@host:6379/1") == "redis://:pw@host:6379/1"
