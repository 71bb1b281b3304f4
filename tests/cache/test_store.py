"""The cache store: JSON only, compression, LRU coherence across processes, permissions."""

from __future__ import annotations

import pickle
import stat
import time
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from beststag_cli.cache.store import CacheStore, decode, encode

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
    lambda c: st.lists(c, max_size=5) | st.dictionaries(st.text(max_size=8), c, max_size=5),
    max_leaves=30,
)


@given(json_values, st.sampled_from([0, 16, 10**9]))
@settings(max_examples=200, deadline=None)
def test_encode_decode_round_trip(value, threshold: int) -> None:  # type: ignore[no-untyped-def]
    assert decode(encode(value, threshold)) == value


def test_large_values_are_compressed(tmp_path: Path) -> None:
    s = CacheStore(tmp_path / "c", compress_min_bytes=1024)
    records = [{"id": f"rec{i:014d}", "fields": {"message": "olá " * 50}} for i in range(100)]
    size = s.set("k", records, expire_s=60)
    assert size < len(encode(records, 10**9)) / 5
    assert s.get("k") == records


def test_refuses_to_unpickle(tmp_path: Path) -> None:
    s = CacheStore(tmp_path / "c")
    # write a pickled value behind the store's back, as a tampered cache file would hold
    import diskcache

    plain = diskcache.Cache(str(tmp_path / "c" / "store"))
    plain.set("evil", {"not": "bytes"})  # diskcache pickles non-bytes values
    plain.close()
    assert s.get("evil") is None  # refused: read as a miss, never unpickled
    assert len(s) == 0  # and dropped
    assert pickle  # the module is only here to make the intent explicit


def test_expiry_and_prune(tmp_path: Path) -> None:
    s = CacheStore(tmp_path / "c")
    s.set("short", 1, expire_s=0.05)
    s.set("long", 2, expire_s=60)
    time.sleep(0.1)
    assert s.get("short") is None
    assert s.expire() >= 0
    assert s.get("long") == 2


def test_lru_never_hides_another_process_write(tmp_path: Path) -> None:
    a = CacheStore(tmp_path / "c", lru_items=100)
    b = CacheStore(tmp_path / "c", lru_items=100)  # another process opening the same directory
    a.set("k", "v1", expire_s=60)
    assert a.get("k") == "v1" and b.get("k") == "v1"
    b.set("k", "v2", expire_s=60)
    assert a.get("k") == "v2"
    b.delete("k")
    assert a.get("k") is None


def test_permissions(tmp_path: Path) -> None:
    s = CacheStore(tmp_path / "c", compress_min_bytes=10**9)
    s.set("big", "x" * 200_000, expire_s=60)  # large enough for diskcache to write a value file
    for p in [tmp_path / "c", *(tmp_path / "c").rglob("*")]:
        mode = stat.S_IMODE(p.stat().st_mode)
        assert mode & 0o077 == 0, (p, oct(mode))


def test_generation_counter_is_atomic(tmp_path: Path) -> None:
    s = CacheStore(tmp_path / "c")
    assert [s.incr("g") for _ in range(3)] == [1, 2, 3]
    assert s.get_int("g") == 3
