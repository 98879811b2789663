"""conveyor-redis: the backend for many machines sharing one queue on a Redis server.

``conveyor.open("redis://127.0.0.1:6379/0?queue=mail")``; see the README for the
key layout, the guarantees and every configuration key.
"""

from conveyor_redis.backend import RedisBackend
from conveyor_redis.config import RedisConfig

__all__ = ["RedisBackend", "RedisConfig"]
