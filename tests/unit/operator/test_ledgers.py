"""ledgers: what of a Redis URL may be shown in status and logs."""

from __future__ import annotations

from switchboard.operator.ledgers import without_credentials


def test_redis_urls_lose_their_credentials_before_they_are_shown() -> None:
    assert without_credentials("redis://user:pa55@redis.svc:6380/2") == "redis://redis.svc:6380/2"
    assert without_credentials("rediss://:pa55@redis/0") == "rediss://redis/0"
    assert without_credentials("redis://u:pa55@redis:port/0") == "redis://redis/0"
