# SPDX-License-Identifier: LGPL-2.1-or-later
# Reference counts and memory: every call of the module, error paths
# included, in a loop; the interpreter's allocated blocks (a leaked
# reference leaves its object allocated) and, outside ASan, the bytes in
# use by malloc() (glibc's mallinfo2: a leaked buffer) and the resident
# memory must stay flat.
import ctypes
import gc
import os
import sys

import pytest

import shf
from conftest import DIR, table_name

ASAN = "libasan" in os.environ.get("LD_PRELOAD", "")


def rss_kib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(f, ctypes.c_size_t) for f in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
        "fsmblks", "uordblks", "fordblks", "keepcost")]


try:
    _mallinfo2 = ctypes.CDLL(None).mallinfo2
    _mallinfo2.restype = _Mallinfo2
except (AttributeError, OSError):  # not glibc >= 2.33
    _mallinfo2 = None


def heap_bytes():
    """Bytes in use by malloc() (small chunks and mmap()ed ones)."""
    if _mallinfo2 is None or ASAN:  # ASan's malloc does not count them
        return 0
    m = _mallinfo2()
    return m.uordblks + m.hblkhd


def total_refs():
    return sys.gettotalrefcount() if hasattr(sys, "gettotalrefcount") else 0


class Boom(Exception):
    pass


def every_call(t, i):
    k = b"key%d" % (i % 50)
    s = "skey%d" % (i % 50)
    t[k] = b"value"
    t[s] = bytearray(b"v" * (i % 100))
    t[k]
    t[s]
    t.get(b"none")
    t.get(k, None)
    k in t
    b"none" in t
    len(t)
    t.put(k, b"v2", ttl=100)
    t.put(k, b"v3", ttl_ms=100000)
    t.put_if_absent(k, b"x")
    t.setdefault(b"sd%d" % (i % 5), b"d")
    t.replace(k, b"r")
    t.cas(k, b"r", b"c")
    t.cas(k, None, b"c")
    t.add(b"counter")
    t.ttl(k)
    u = t.uid(k)
    t.get_uid(u)
    t.get_uid_key(u)
    t.get_many([k, s, b"none", memoryview(b"key1")])
    t.get_many((k,) * 3, b"-")
    if i % 10 == 0:
        t.keys()
        t.values()
        t.items()
        list(t)
        t.stats()
        t.update({b"u": b"1"})
        t.expire(16)
        t.default_ttl
        t.byte_budget
    if i % 50 == 0:
        t.check()
    with t.get_or_lease(b"lease%d" % (i % 7)) as lease:
        if lease.leased:
            lease.value = b"L"
    try:
        with t.get_or_lease(b"fail") as lease:
            raise Boom()
    except Boom:
        pass
    t.get_or_lease(b"put").put(b"p")
    t.delete(b"put")
    t.get_or_lease(b"rel").release()
    t.del_uid(t.put(b"d", b"d"))
    t.delete(k)
    # error paths
    for bad in (lambda: t[b"none"], lambda: t.__delitem__(b"none"),
                lambda: t.uid(b"none"), lambda: t.ttl(b"none")):
        try:
            bad()
        except KeyError:
            pass
    for bad in (lambda: t[5], lambda: t.put(b"k", None),
                lambda: t.get_many([b"a", 5]), lambda: t.put(b"k", b"v", x=1),
                lambda: t.get_or_lease(b"k", lease=1, lease_ms=1)):
        try:
            bad()
        except TypeError:
            pass
    for bad in (lambda: t.put(b"k", b"v", ttl=-1), lambda: t.get_uid(-1)):
        try:
            bad()
        except ValueError:
            pass
    t[b"not8"] = b"abc"
    try:
        t.add(b"not8")
    except ValueError:
        pass


def open_close(i):
    n = table_name("leak-open")
    t = shf.Table(DIR, n)
    t[b"k"] = b"v"
    with shf.Table.attach_existing(DIR, n) as t2:
        t2[b"k"]
    t.close()
    try:
        t[b"k"]
    except ValueError:
        pass
    shf.Table(DIR, n).unlink()
    try:
        shf.Table.attach_existing(DIR, n)
    except FileNotFoundError:
        pass


def measure(fn, rounds, per_round):
    """Growth of (blocks, heap bytes, RSS KiB, refs) over rounds - 1 rounds
    of per_round calls of fn, after a round of warm-up (caches, buffers,
    free lists, the table's growth, the measures themselves: ctypes' first
    call allocates) and a first measured round, which may still absorb a
    one-time growth (e.g. a dict of the interpreter resized); a leak grows
    every round."""
    heap_bytes()
    rss_kib()
    for i in range(per_round):
        fn(i)
    for r in range(rounds):
        for i in range(per_round):
            fn(i)
        gc.collect()
        if r == 0:
            blocks0, heap0 = sys.getallocatedblocks(), heap_bytes()
            rss0, refs0 = rss_kib(), total_refs()
    return (sys.getallocatedblocks() - blocks0, heap_bytes() - heap0,
            rss_kib() - rss0, total_refs() - refs0)


def test_every_call_is_flat(table):
    # About 60 calls per iteration: 4800 measured iterations make 290,000
    # calls.  A leak of one object in any call shows as 4800 blocks or
    # more, a malloc() of 16 bytes as 150 KiB of heap or more.
    blocks, heap, rss, refs = measure(lambda i: every_call(table, i), 5, 1200)
    assert blocks < 500, "%d blocks more" % blocks
    assert abs(refs) < 500, "%d references more" % refs
    assert heap < 64 << 10, "%d bytes of heap more" % heap
    if not ASAN:  # ASan's quarantine holds freed memory a while
        assert rss < 4096, "%d KiB more" % rss


def test_open_close_is_flat():
    blocks, heap, rss, refs = measure(open_close, 5, 100)
    assert blocks < 500, "%d blocks more" % blocks
    assert heap < 64 << 10, "%d bytes of heap more" % heap
    if not ASAN:
        assert rss < 8192, "%d KiB more" % rss


@pytest.mark.skipif(ASAN, reason="ASan's quarantine holds freed memory")
def test_big_values_are_freed(table):
    big = b"x" * (4 << 20)
    table[b"big"] = big
    for _ in range(3):
        table[b"big"]
        table.get_many([b"big"] * 4)
        table.items()
    gc.collect()
    rss0 = rss_kib()
    for _ in range(20):
        table[b"big"]
        table.get_many([b"big"] * 4)
        table.items()
    gc.collect()
    assert rss_kib() - rss0 < 32 << 10
