"""The rate limiter shared by every host: a sliding window in a Redis sorted set (``airtable.limiter: redis``).

Per base, three keys (outside the cache's prefix: every deployment that talks to the same base must
share them, since Airtable counts per base):

    beststag:ratelimit:<base>:grants     sorted set: finished requests (and plain grants), scored by time (µs)
    beststag:ratelimit:<base>:inflight   sorted set: held grants whose answer is not in yet, scored by grant time
    beststag:ratelimit:<base>:penalty    exists while the base is penalised (PX = what is left)

One Lua script decides a grant atomically on the server: it reads the server's clock (``TIME``,
so hosts with skewed clocks agree), drops what left the window, and either adds the new grant or
answers how long to wait (the penalty, or until a request leaves the window). A held grant counts
from the grant until ``hold().release()`` (its answer), then one window more, as in the file
limiter (see there why). Clients sleep that long and ask again; inside one process, waiting threads
queue on a lock per base so one of them polls at a time (as the file limiter does).

Distrust of what is stored, as in the file limiter: a key of the wrong type is deleted, a penalty
longer than ``MAX_PENALTY_S`` (or without a TTL) is cut to it, grant times ahead of the server's
clock count as now, held grants never released stop counting after ``hold_s``.

Same interface (:class:`beststag_cli.gateway.limits.Limiter`) and the same margin as the file limiter.
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
from .limits import (
    AIRTABLE_PENALTY_S,
    DEFAULT_HOLD_S,
    DEFAULT_MARGIN_S,
    MAX_PENALTY_S,
    Hold,
    note_wait,
    wait_for_grant,
)

KEY_PREFIX = "beststag:ratelimit:"

# Shared preamble. KEYS: grants, penalty, inflight. ARGV: limit, window (µs), max penalty (ms), hold (µs).
# Distrust what is stored: a key of the wrong type is deleted; a penalty longer than the maximum (or
# without a TTL) is cut to the maximum; grant times ahead of the server's clock (it moved back) count
# as now; held grants older than `hold` are finished. Sets `now`, `pen` (ms), `limit`, `window`.
_PREAMBLE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local maxpen = tonumber(ARGV[3])
local hold = tonumber(ARGV[4])
for i = 1, 3, 2 do
  local ty = redis.call('TYPE', KEYS[i])['ok']
  if ty ~= 'none' and ty ~= 'zset' then redis.call('DEL', KEYS[i]) end
end
local pen = redis.call('PTTL', KEYS[2])
if pen == -1 or pen > maxpen then
  redis.call('PEXPIRE', KEYS[2], maxpen)
  pen = maxpen
end
for _, key in ipairs({KEYS[1], KEYS[3]}) do
  local ahead = redis.call('ZRANGEBYSCORE', key, '(' .. string.format('%.0f', now), '+inf')
  for _, m in ipairs(ahead) do redis.call('ZADD', key, now, m) end
end
local stale = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now - hold, 'WITHSCORES')
for i = 1, #stale, 2 do
  redis.call('ZREM', KEYS[3], stale[i])
  redis.call('ZADD', KEYS[1], tonumber(stale[i + 1]) + hold, stale[i])
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local done = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local n = #done / 2 + redis.call('ZCARD', KEYS[3])
-- when a slot frees: the (n - limit + 1)-th to leave; a finished grant leaves at its time + window,
-- one in flight not before now + window (its release is still to come)
local wait = 0
if n >= limit then
  local k = n - limit + 1
  if k <= #done / 2 then wait = tonumber(done[2 * k]) + window - now else wait = window end
  if wait < 1 then wait = 1 end
end
"""

# ARGV[5]: member, ARGV[6]: '1' to hold the slot until released. Returns {µs to wait (0: granted), reason}.
_GRANT = (
    _PREAMBLE
    + """
if pen > 0 and pen * 1000 > wait then return {pen * 1000, 'penalty'} end
if wait > 0 then return {wait, 'window'} end
if ARGV[6] == '1' then redis.call('ZADD', KEYS[3], now, ARGV[5]) else redis.call('ZADD', KEYS[1], now, ARGV[5]) end
local ttl = math.ceil((window + hold) / 1000) + 1000
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[3], ttl)
return {0, 'granted'}
"""
)

# KEYS: grants, inflight. ARGV: member, window (µs), hold (µs). A held grant finishes now.
_RELEASE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
for i = 1, 2 do
  local ty = redis.call('TYPE', KEYS[i])['ok']
  if ty ~= 'none' and ty ~= 'zset' then redis.call('DEL', KEYS[i]) end
end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('PEXPIRE', KEYS[1], math.ceil((tonumber(ARGV[2]) + tonumber(ARGV[3])) / 1000) + 1000)
return 0
"""

# KEYS: penalty. ARGV: ms. Lengthens the penalty, never shortens it (a TTL-less or too long one is cut).
_PENALIZE = """
local left = redis.call('PTTL', KEYS[1])
local ms = tonumber(ARGV[1])
if left < ms or left > tonumber(ARGV[2]) or left == -1 then redis.call('SET', KEYS[1], '1', 'PX', ms) end
return 0
"""

# Same keys and ARGV as the preamble. Returns µs until a grant would be made (0: now).
_WAIT = (
    _PREAMBLE
    + """
if pen * 1000 > wait then return pen * 1000 end
return wait
"""
)


class RedisRateLimiter:
    """At most ``per_second`` requests per ``window_s`` (+ margin) per base id, across hosts."""

    def __init__(
        self,
        url: str,
        per_second: int = 5,
        window_s: float = 1.0,
        *,
        margin_s: float = DEFAULT_MARGIN_S,
        hold_s: float = DEFAULT_HOLD_S,
        sleep_fn: Callable[[float], None] = time.sleep,
        time_fn: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_second < 1:
            raise ValueError("per_second must be at least 1")
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        if hold_s <= 0:
            raise ValueError("hold_s must be positive")
        import redis

        self.url = url
        self.per_second = per_second
        self.window_s = window_s
        self.margin_s = margin_s
        self.hold_s = hold_s
        self._sleep = sleep_fn
        self._time = time_fn
        self.client = redis.Redis.from_url(
            url, socket_connect_timeout=2.0, socket_timeout=5.0, health_check_interval=30
        )
        self._grant = self.client.register_script(_GRANT)
        self._release = self.client.register_script(_RELEASE)
        self._penalize = self.client.register_script(_PENALIZE)
        self._wait = self.client.register_script(_WAIT)
        self._queues: dict[str, threading.Lock] = {}
        self._queues_lock = threading.Lock()
        self._pid = os.getpid()

    @property
    def effective_window_s(self) -> float:
        return self.window_s + self.margin_s

    def _keys(self, base_id: str) -> list[str]:
        return [f"{KEY_PREFIX}{base_id}:grants", f"{KEY_PREFIX}{base_id}:penalty", f"{KEY_PREFIX}{base_id}:inflight"]

    def _args(self) -> list[int]:
        return [
            self.per_second,
            int(self.effective_window_s * 1_000_000),
            int(MAX_PENALTY_S * 1000),
            int(self.hold_s * 1_000_000),
        ]

    def _queue(self, base_id: str) -> threading.Lock:
        if self._pid != os.getpid():  # after fork: the parent's locks may be held by threads we lack
            self._queues, self._queues_lock, self._pid = {}, threading.Lock(), os.getpid()
        q = self._queues.get(base_id)
        if q is None:
            with self._queues_lock:
                q = self._queues.setdefault(base_id, threading.Lock())
        return q

    def _call(self, fn: Callable[[], Any]) -> Any:
        from redis.exceptions import RedisError

        try:
            return fn()
        except RedisError as e:
            raise UpstreamUnavailable(
                f"the rate limiter's Redis failed: {type(e).__name__}: {str(e)[:200]}",
                hint="check airtable.limiter_redis_url (or cache.redis_url) and that Redis answers; "
                "`airtable.limiter: file` limits per host without it",
            ) from None

    def _try_grant(self, base_id: str, member: str, hold: bool) -> tuple[float, str]:
        """(0, _) when granted; else the seconds to wait before asking again, and why."""
        args = [*self._args(), member, "1" if hold else "0"]
        wait_us, reason = self._call(lambda: self._grant(keys=self._keys(base_id), args=args))
        reason = reason.decode() if isinstance(reason, bytes) else str(reason)
        return int(wait_us) / 1_000_000, reason

    def _acquire(self, base_id: str, timeout: float | None, hold: bool) -> tuple[str, float]:
        member = f"{time.time_ns()}-{secrets.token_hex(6)}"

        def note(waited: float, seconds: float, reason: str) -> None:
            note_wait(
                base_id,
                waited,
                seconds,
                reason,
                per_second=self.per_second,
                window_s=self.window_s,
                where=f"redis {KEY_PREFIX}{base_id}:*",
            )

        waited = wait_for_grant(
            lambda: self._try_grant(base_id, member, hold),
            self._queue(base_id),
            base_id,
            timeout,
            self._time,
            self._sleep,
            note,
        )
        return member, waited

    # ---- public API (that of RateLimiter)

    def acquire(self, base_id: str, timeout: float | None = None) -> float:
        """Block until a request to ``base_id`` may be sent; return the seconds waited."""
        return self._acquire(base_id, timeout, False)[1]

    def hold(self, base_id: str, timeout: float | None = None) -> Hold:
        """Block until a request to ``base_id`` may be sent; the slot counts until released."""
        member, waited = self._acquire(base_id, timeout, True)
        keys = self._keys(base_id)
        args: list[str | int] = [member, int(self.effective_window_s * 1_000_000), int(self.hold_s * 1_000_000)]
        return Hold(lambda: self._call(lambda: self._release(keys=[keys[0], keys[2]], args=args)), waited)

    def try_acquire(self, base_id: str) -> bool:
        q = self._queue(base_id)
        if not q.acquire(blocking=False):
            return False
        try:
            return self._try_grant(base_id, f"{time.time_ns()}-{secrets.token_hex(6)}", False)[0] <= 0
        finally:
            q.release()

    def penalize(self, base_id: str, seconds: float = AIRTABLE_PENALTY_S) -> None:
        """Stop every host from sending to ``base_id`` for ``seconds`` (after a 429; at most ``MAX_PENALTY_S``)."""
        ms = int(min(seconds, MAX_PENALTY_S) * 1000)
        if ms > 0:
            self._call(lambda: self._penalize(keys=self._keys(base_id)[1:2], args=[ms, int(MAX_PENALTY_S * 1000)]))

    def penalty_remaining(self, base_id: str) -> float:
        """Seconds left of a penalty on ``base_id`` (0 when none; never more than ``MAX_PENALTY_S``)."""
        left = int(self._call(lambda: self.client.pttl(self._keys(base_id)[1])))
        if left == -1:
            return MAX_PENALTY_S
        return min(max(0.0, left / 1000), MAX_PENALTY_S)

    def wait_time(self, base_id: str) -> float:
        us = int(self._call(lambda: self._wait(keys=self._keys(base_id), args=self._args())))
        return max(0.0, us / 1_000_000)

    def reset(self, base_id: str) -> None:
        self._call(lambda: self.client.delete(*self._keys(base_id)))

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> RedisRateLimiter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
