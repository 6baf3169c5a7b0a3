"""A Redis database of the tests' own on the local server, or a skip where there is none."""

import pytest
import redis


def redis_db_or_skip(url: str) -> redis.Redis:
    """The Redis database at `url`, emptied; the test is skipped when no server answers."""
    connection = redis.Redis.from_url(url)
    try:
        connection.ping()
    except redis.ConnectionError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    connection.flushdb()
    return connection
