# SPDX-License-Identifier: LGPL-2.1-or-later
# Bad input never crashes the interpreter: wrong types, huge lengths,
# closed tables, bad names, bad durations, files that are not tables.
import errno
import mmap
import os
import threading
import time

import pytest

import shf
from conftest import DIR, remove


class NotBytes:
    pass


BAD_KEYS = [None, 1, 1.5, NotBytes(), [b"a"], (b"a",), {b"a": 1}, object()]


@pytest.mark.parametrize("bad", BAD_KEYS, ids=lambda v: type(v).__name__)
def test_wrong_key_types(table, bad):
    t = table
    t[b"ok"] = b"v"
    calls = [
        lambda: t[bad],
        lambda: t.__setitem__(bad, b"v"),
        lambda: t.__delitem__(bad),
        lambda: bad in t,
        lambda: t.get(bad),
        lambda: t.put(bad, b"v"),
        lambda: t.put_if_absent(bad, b"v"),
        lambda: t.setdefault(bad, b"v"),
        lambda: t.replace(bad, b"v"),
        lambda: t.cas(bad, b"v", b"w"),
        lambda: t.delete(bad),
        lambda: t.add(bad),
        lambda: t.uid(bad),
        lambda: t.ttl(bad),
        lambda: t.get_or_lease(bad),
        lambda: t.get_many([b"ok", bad]),
        lambda: t.update([(bad, b"v")]),
    ]
    for c in calls:
        with pytest.raises(TypeError):
            c()
    assert t[b"ok"] == b"v"


@pytest.mark.parametrize("bad", [None, 1, NotBytes()], ids=lambda v: type(v).__name__)
def test_wrong_value_types(table, bad):
    t = table
    for c in [
        lambda: t.__setitem__(b"k", bad),
        lambda: t.put(b"k", bad),
        lambda: t.put_if_absent(b"k", bad),
        lambda: t.setdefault(b"k", bad),
        lambda: t.replace(b"k", bad),
        lambda: t.cas(b"k", b"v", bad),
        lambda: t.cas(b"k", bad, b"v") if bad is not None else t.cas(b"k", 5, b"v"),
    ]:
        with pytest.raises(TypeError):
            c()
    assert b"k" not in t


def test_wrong_argument_counts(table):
    t = table
    for c in [
        lambda: t.get(),
        lambda: t.get(b"a", 1, 2),
        lambda: t.get_many(),
        lambda: t.get_many(5),  # not iterable
        lambda: t.put(b"k"),
        lambda: t.put(b"k", b"v", 1),
        lambda: t.put(b"k", b"v", nope=1),
        lambda: t.put(b"k", b"v", key=b"k"),
        lambda: t.cas(b"k", b"v"),
        lambda: t.add(b"k", 1, 2),
        lambda: t.add(b"k", "1"),
        lambda: t.add(b"k", 1.0),
        lambda: t.get_uid(),
        lambda: t.get_uid("1"),
        lambda: t.del_uid(1, 2),
        lambda: t.set_fixed_len(1),
        lambda: t.set_fixed_len("a", 1),
        lambda: t.expire("x"),
        lambda: t.check(1, 2),
        lambda: t.update(1, 2),
        lambda: t.update(5),
        lambda: shf.Table(),
        lambda: shf.Table(DIR),
        lambda: shf.Table(DIR, 5),
        lambda: shf.Table(DIR, "n", 1),
        lambda: shf.set_file_mode("0600"),
        lambda: t.put(b"k", b"v", ttl="1"),
        lambda: t.put(b"k", b"v", ttl_ms=1.5),
    ]:
        with pytest.raises(TypeError):
            c()


def test_huge_lengths(table):
    # A 4 GiB + 1 anonymous mapping: never touched, so it costs no memory;
    # lengths past UINT32_MAX are refused before libshf sees them.
    try:
        m = mmap.mmap(-1, (1 << 32) + 1)
    except (OSError, OverflowError, ValueError) as e:
        pytest.skip("no 4 GiB mapping here: %s" % e)
    try:
        huge = memoryview(m)
        t = table
        for c in [
            lambda: t[huge],
            lambda: t.__setitem__(b"k", huge),
            lambda: t.__setitem__(huge, b"v"),
            lambda: huge in t,
            lambda: t.put(b"k", huge),
            lambda: t.cas(b"k", huge, b"v"),
            lambda: t.get_many([b"a", huge]),
            lambda: t.get_or_lease(huge),
        ]:
            with pytest.raises(ValueError):
                c()
        assert b"k" not in t
        huge.release()
    finally:
        m.close()


def test_out_of_range_numbers(table):
    t = table
    for c in [
        lambda: t.get_uid(-1),
        lambda: t.get_uid(1 << 32),
        lambda: t.get_uid(1 << 100),
        lambda: t.del_uid(-5),
        lambda: t.put(b"k", b"v", ttl=-1),
        lambda: t.put(b"k", b"v", ttl=float("nan")),
        lambda: t.put(b"k", b"v", ttl=float("inf")),
        lambda: t.put(b"k", b"v", ttl=1e12),
        lambda: t.put(b"k", b"v", ttl_ms=-1),
        lambda: t.put(b"k", b"v", ttl_ms=1 << 32),
        lambda: t.put(b"k", b"v", ttl_ms=1 << 80),
        lambda: t.get_or_lease(b"k", lease=0),
        lambda: t.get_or_lease(b"k", lease_ms=0),
        lambda: t.get_or_lease(b"k", wait=-1),
        lambda: t.expire(-1),
        lambda: t.expire(1 << 40),
        lambda: t.set_fixed_len(0, 1),
        lambda: t.set_fixed_len(1, 1 << 33),
        lambda: shf.Table(DIR, "x", ttl=-1),
        lambda: shf.Table(DIR, "x", budget=-1),
        lambda: setattr(t, "byte_budget", -1),
        lambda: setattr(t, "default_ttl", -1),
        lambda: shf.set_file_mode(0o777),
        lambda: shf.set_file_mode(0o666),
        lambda: shf.set_file_mode(-1),
    ]:
        with pytest.raises(ValueError):
            c()
    with pytest.raises(OverflowError):
        t.add(b"n", 1 << 64)
    with pytest.raises(TypeError):
        t.put(b"k", b"v", ttl=1, ttl_ms=1000)
    assert len(t) == 0


def test_bad_names():
    for n in ["", ".hidden", "a/b", "x" * 201, "nul\0byte"]:
        with pytest.raises(ValueError):
            shf.Table(DIR, n)
    with pytest.raises(ValueError):
        shf.Table("", "name")
    with pytest.raises(ValueError):
        shf.Table(DIR + "\0", "name")
    with pytest.raises(FileNotFoundError) as e:
        shf.Table("/nonexistent-dir-of-shf-tests", "name")
    assert e.value.errno == errno.ENOENT


def test_not_a_table(name):
    path = os.path.join(DIR, name + ".shf")
    with open(path, "wb") as f:
        f.write(b"this is not a table" * 1000)
    try:
        with pytest.raises(OSError) as e:
            shf.Table(DIR, name)
        assert e.value.errno == errno.EBADMSG
        assert name in str(e.value)
    finally:
        remove(name)


def test_closed_table(name):
    t = shf.Table(DIR, name)
    t[b"k"] = b"v"
    t.close()
    for c in [
        lambda: t[b"k"],
        lambda: t.__setitem__(b"k", b"v"),
        lambda: t.__delitem__(b"k"),
        lambda: b"k" in t,
        lambda: len(t),
        lambda: list(t),
        lambda: t.keys(),
        lambda: t.values(),
        lambda: t.items(),
        lambda: t.get(b"k"),
        lambda: t.get_many([b"k"]),
        lambda: t.put(b"k", b"v"),
        lambda: t.put_if_absent(b"k", b"v"),
        lambda: t.setdefault(b"k", b"v"),
        lambda: t.replace(b"k", b"v"),
        lambda: t.cas(b"k", b"v", b"w"),
        lambda: t.delete(b"k"),
        lambda: t.add(b"k"),
        lambda: t.uid(b"k"),
        lambda: t.get_uid(1),
        lambda: t.get_uid_key(1),
        lambda: t.del_uid(1),
        lambda: t.ttl(b"k"),
        lambda: t.get_or_lease(b"k"),
        lambda: t.expire(),
        lambda: t.stats(),
        lambda: t.check(),
        lambda: t.update({b"a": b"b"}),
        lambda: t.clear(),
        lambda: t.set_fixed_len(1, 1),
        lambda: t.default_ttl,
        lambda: t.byte_budget,
        lambda: setattr(t, "byte_budget", 1),
        lambda: t.unlink(),
        lambda: t.__enter__(),
        lambda: t.__reduce__(),
    ]:
        with pytest.raises(ValueError):
            c()
    t.close()
    remove(name)


def leased_elsewhere(name):
    """Does another process get the lease on b"k" at once?"""
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            t = shf.Table(DIR, name)
            code = 0 if t.get_or_lease(b"k", lease=5, wait=0.001).leased else 1
        except TimeoutError:
            code = 2
        finally:
            os._exit(code)
    return os.waitpid(pid, 0)[1] == 0


def test_lease_after_close(name):
    t = shf.Table(DIR, name)
    lease = t.get_or_lease(b"k", lease=5)
    assert lease.leased
    t.close()
    assert t.closed
    with pytest.raises(ValueError):
        lease.put(b"v")
    # given up, not left for its lease time: another process takes it now
    assert not lease.leased
    assert leased_elsewhere(name)
    lease = None
    remove(name)


def test_lease_given_up_when_the_table_closes_in_its_block(name):
    # A with-block that raises after the table was closed (a with Table
    # around it): the lease is given up, not kept for its lease time.
    t = shf.Table(DIR, name)
    with pytest.raises(RuntimeError):
        with t.get_or_lease(b"k", lease=60):
            t.close()
            raise RuntimeError("the fill failed")
    assert leased_elsewhere(name)
    remove(name)


def test_negative_ttl_below_a_millisecond(name):
    t = shf.Table(DIR, name)
    with pytest.raises(ValueError):
        t.put(b"k", b"v", ttl=-0.0004)
    t.close()
    remove(name)


def lease_in_a_child(t):
    """A child process that holds the lease on b"k" of t until done is
    set, then fills it with b"late" (a lease held by this very handle's
    other grant cannot be used to make a thread wait): (process, done)."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    ready = ctx.Event()
    done = ctx.Event()

    def holder():
        with t.get_or_lease(b"k", lease=30) as lease:
            ready.set()
            done.wait(20)
            lease.value = b"late"

    p = ctx.Process(target=holder)
    p.start()
    assert ready.wait(20)
    return p, done


def test_close_while_another_thread_waits(name):
    # A thread waits inside libshf, on a lease another process holds.
    t = shf.Table(DIR, name)
    p, done = lease_in_a_child(t)
    out = {}

    def waiter():
        try:
            out["v"] = t.get_or_lease(b"k", wait=10).value
        except Exception as e:  # pragma: no cover
            out["e"] = e

    th = threading.Thread(target=waiter)
    th.start()
    # the waiter is in its call once it counted its wait (a sleep was no
    # proof of that on a loaded machine)
    end = time.monotonic() + 20
    while t.stats()["lease_waits"] < 1:
        assert time.monotonic() < end, "the waiter never waited"
        time.sleep(0.005)
    t.close()  # the waiter's call holds the mapping until it returns
    assert t.closed
    with pytest.raises(ValueError):
        t[b"k"]
    done.set()
    th.join(20)
    p.join(20)
    assert out == {"v": b"late"}
    assert p.exitcode == 0
    remove(name)


def test_fork_while_another_thread_waits(name):
    # fork() while a thread is inside a call: the child has no such
    # thread, and its close() and unlink() work (before: unlink() was
    # EBUSY, close() never detached).
    t = shf.Table(DIR, name)
    p, done = lease_in_a_child(t)
    th = threading.Thread(target=lambda: t.get_or_lease(b"k", wait=10))
    th.start()
    time.sleep(0.2)  # the thread waits inside libshf now
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            t.get_or_lease(b"other", lease=1).release()
            t.unlink()  # before: EBUSY, for a call of a thread not here
            code = 0 if t.closed else 2
        finally:
            os._exit(code)
    assert os.waitpid(pid, 0)[1] == 0
    done.set()
    th.join(20)
    p.join(20)
    assert p.exitcode == 0
    t.close()
    remove(name)


def test_exceptions_keep_errno(table):
    with pytest.raises(TimeoutError) as e:
        # a lease of another process, waited for 0 ms
        import multiprocessing as mp

        ctx = mp.get_context("fork")
        ready, done = ctx.Event(), ctx.Event()

        def holder():
            lease = table.get_or_lease(b"k", lease=30)
            ready.set()
            done.wait(20)
            lease.release()

        p = ctx.Process(target=holder)
        p.start()
        try:
            assert ready.wait(20)
            table.get_or_lease(b"k", wait=0)
        finally:
            done.set()
            p.join(20)
    assert e.value.errno == errno.ETIMEDOUT
