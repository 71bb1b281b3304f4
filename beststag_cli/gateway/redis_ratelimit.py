"""The rate limiter shared by every host: a sliding window in a Redis sorted set (``airtable.limiter: redis``).

Per base, two keys (outside the cache's prefix: every deployment that talks to the same base must
share them, since Airtable counts per base):

    beststag:ratelimit:<base>:grants     sorted set: one member per grant, scored by its time (µs)
    beststag:ratelimit:<base>:penalty    exists while the base is penalised (PX = what is left)

One Lua script decides a grant atomically on the server: it reads the server's clock (``TIME``,
so hosts with skewed clocks agree), drops grants older than the window, and either adds the new
grant or answers how long to wait (the penalty, or until the oldest grant that counts leaves the
window). Clients sleep that long and ask again; inside one process, waiting threads queue on a
lock per base so one of them polls at a time (as the file limiter does).

Same interface as :class:`beststag_cli.gateway.ratelimit.RateLimiter` and the same margin: grants
are ``window_s + margin_s`` apart in groups of ``per_second``.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from ..errors import UpstreamUnavailable
from .ratelimit import DEFAULT_MARGIN_S, MAX_PENALTY_S, wait_for_grant

KEY_PREFIX = "beststag:ratelimit:"

# KEYS: grants, penalty. ARGV: limit, window (µs), member. Returns 0 (granted) or µs to wait.
_GRANT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local pen = redis.call('PTTL', KEYS[2])
if pen > 0 then return pen * 1000 end
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local n = redis.call('ZCARD', KEYS[1])
if n < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000) + 1000)
  return 0
end
local first = redis.call('ZRANGE', KEYS[1], n - limit, n - limit, 'WITHSCORES')
local wait = tonumber(first[2]) + window - now
if wait < 1 then wait = 1 end
return wait
"""

# KEYS: penalty. ARGV: ms. Lengthens the penalty, never shortens it.
_PENALIZE = """
local left = redis.call('PTTL', KEYS[1])
local ms = tonumber(ARGV[1])
if left < ms then redis.call('SET', KEYS[1], '1', 'PX', ms) end
return 0
"""

# KEYS: grants, penalty. ARGV: limit, window (µs). Returns µs until a grant would be made (0: now).
_WAIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local pen = redis.call('PTTL', KEYS[2])
local wait = 0
if pen > 0 then wait = pen * 1000 end
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local recent = redis.call('ZRANGEBYSCORE', KEYS[1], now - window, '+inf', 'WITHSCORES')
local n = #recent / 2
if n >= limit then
  local w = tonumber(recent[2 * (n - limit) + 2]) + window - now
  if w > wait then wait = w end
end
return wait
"""


class RedisRateLimiter:
    """At most ``per_second`` grants per ``window_s`` (+ margin) per base id, across hosts."""

    def __init__(self, url: str, per_second: int = 5, window_s: float = 1.0, *, margin_s: float = DEFAULT_MARGIN_S,
                 sleep_fn: Callable[[float], None] = time.sleep, time_fn: Callable[[], float] = time.monotonic
                 ) -> None:
        if per_second < 1:
            raise ValueError("per_second must be at least 1")
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        import redis

        self.url = url
        self.per_second = per_second
        self.window_s = window_s
        self.margin_s = margin_s
        self._sleep = sleep_fn
        self._time = time_fn
        self.client = redis.Redis.from_url(url, socket_connect_timeout=2.0, socket_timeout=5.0,
                                           health_check_interval=30)
        self._grant = self.client.register_script(_GRANT)
        self._penalize = self.client.register_script(_PENALIZE)
        self._wait = self.client.register_script(_WAIT)
        self._queues: dict[str, threading.Lock] = {}
        self._queues_lock = threading.Lock()
        self._pid = os.getpid()

    @property
    def effective_window_s(self) -> float:
        return self.window_s + self.margin_s

    def _keys(self, base_id: str) -> list[str]:
        return [f"{KEY_PREFIX}{base_id}:grants", f"{KEY_PREFIX}{base_id}:penalty"]

    def _queue(self, base_id: str) -> threading.Lock:
        if self._pid != os.getpid():  # after fork: the parent's locks may be held by threads we lack
            self._queues, self._queues_lock, self._pid = {}, threading.Lock(), os.getpid()
        q = self._queues.get(base_id)
        if q is None:
            with self._queues_lock:
                q = self._queues.setdefault(base_id, threading.Lock())
        return q

    def _call(self, fn: Callable[[], Any]) -> int:
        from redis.exceptions import RedisError

        try:
            return int(fn())
        except RedisError as e:
            raise UpstreamUnavailable(
                f"the rate limiter's Redis failed: {type(e).__name__}: {str(e)[:200]}",
                hint="check airtable.limiter_redis_url (or cache.redis_url) and that Redis answers; "
                     "`airtable.limiter: file` limits per host without it") from None

    def _try_grant(self, base_id: str) -> float:
        """0 when granted; else the seconds to wait before asking again."""
        member = f"{time.time_ns()}-{secrets.token_hex(6)}"
        args = [self.per_second, int(self.effective_window_s * 1_000_000), member]
        wait_us = self._call(lambda: self._grant(keys=self._keys(base_id), args=args))
        return wait_us / 1_000_000

    # ---- public API (that of RateLimiter)

    def acquire(self, base_id: str, timeout: float | None = None) -> float:
        """Block until a request to ``base_id`` may be sent; return the seconds waited."""
        return wait_for_grant(lambda: self._try_grant(base_id), self._queue(base_id), base_id, timeout,
                              self._time, self._sleep)

    def try_acquire(self, base_id: str) -> bool:
        q = self._queue(base_id)
        if not q.acquire(blocking=False):
            return False
        try:
            return self._try_grant(base_id) <= 0
        finally:
            q.release()

    def penalize(self, base_id: str, seconds: float = 30.0) -> None:
        """Stop every host from sending to ``base_id`` for ``seconds`` (after a 429)."""
        ms = int(min(seconds, MAX_PENALTY_S) * 1000)
        if ms > 0:
            self._call(lambda: self._penalize(keys=self._keys(base_id)[1:], args=[ms]))

    def penalty_remaining(self, base_id: str) -> float:
        """Seconds left of a penalty on ``base_id`` (0 when none)."""
        left = self._call(lambda: self.client.pttl(self._keys(base_id)[1]))
        return max(0.0, left / 1000)

    def wait_time(self, base_id: str) -> float:
        args = [self.per_second, int(self.effective_window_s * 1_000_000)]
        us = self._call(lambda: self._wait(keys=self._keys(base_id), args=args))
        return max(0.0, us / 1_000_000)

    def reset(self, base_id: str) -> None:
        self._call(lambda: self.client.delete(*self._keys(base_id)))

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> RedisRateLimiter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
