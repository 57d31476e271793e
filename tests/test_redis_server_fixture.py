"""The test Redis (tests/redis_server.py) is a real server that persists like production's: kill -9 loses nothing."""

import socket

import pytest
import redis

from .redis_server import ping


def test_it_is_configured_like_production(redis_server):
    client = redis.Redis.from_url(redis_server.url)
    config = {name: client.config_get(name)[name] for name in ("appendonly", "appendfsync", "save",
                                                                 "protected-mode", "bind", "port")}
    assert config == {"appendonly": "yes", "appendfsync": "always", "save": "", "protected-mode": "yes",
                      "bind": "127.0.0.1", "port": str(redis_server.port)}
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"


def test_a_write_survives_kill_9_and_restart_thanks_to_the_append_only_file(redis_server):
    client = redis.Redis.from_url(redis_server.url)
    client.set("hunyuan:test", "kept")
    client.zadd("hunyuan:jobs", {"job-1": 1.0, "job-2": 2.0})
    client.close()
    redis_server.kill()
    assert not redis_server.is_running()
    redis_server.restart()
    client = redis.Redis.from_url(redis_server.url)
    assert client.get("hunyuan:test") == b"kept"
    assert client.zrange("hunyuan:jobs", 0, -1) == [b"job-1", b"job-2"]
    assert list((redis_server.folder / "appendonlydir").iterdir()), "no append-only file was written"


def test_connections_are_refused_while_it_is_down_and_accepted_again_after_restart(redis_server):
    redis_server.kill()
    assert not ping(redis_server.port)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", redis_server.port), timeout=2).close()
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(redis_server.url, socket_connect_timeout=2).ping()
    redis_server.restart()
    assert redis.Redis.from_url(redis_server.url).ping()
