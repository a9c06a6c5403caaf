# SPDX-License-Identifier: LGPL-2.1-or-later
# The mapping API of shf.Table in one process: the protocol, conditional
# puts, counters, UIDs, batched gets, stats, check, life cycle.
import collections.abc
import os
import pickle
import struct

import pytest

import shf
from conftest import DIR, remove, table_name


def test_version():
    assert shf.__version__ == shf.library_version()
    if "PACKAGE_VERSION" in os.environ:
        assert shf.__version__ == os.environ["PACKAGE_VERSION"]


def test_mapping_protocol(table):
    t = table
    assert len(t) == 0 and not t
    t[b"k"] = b"v"
    assert t[b"k"] == b"v"
    assert b"k" in t and b"nope" not in t
    assert len(t) == 1 and t
    t[b"k"] = b"w"  # replaces
    assert t[b"k"] == b"w" and len(t) == 1
    del t[b"k"]
    assert b"k" not in t and len(t) == 0
    with pytest.raises(KeyError) as e:
        t[b"k"]
    assert e.value.args == (b"k",)
    with pytest.raises(KeyError):
        del t[b"k"]
    assert t.get(b"k") is None
    assert t.get(b"k", 7) == 7
    t[b"k"] = b"v"
    assert t.get(b"k", 7) == b"v"
    assert isinstance(t, collections.abc.Mapping)


def test_key_and_value_types(table):
    t = table
    t["str"] = "välue"  # str: UTF-8
    assert t[b"str"] == "välue".encode()
    assert t["str"] == "välue".encode()
    t[bytearray(b"ba")] = memoryview(b"mv")
    assert t[b"ba"] == b"mv"
    assert t[memoryview(b"ba")] == b"mv"
    # empty key and empty value are fine
    t[b""] = b""
    assert t[b""] == b""
    # binary, with NUL bytes
    t[b"\0\1\2"] = b"\0" * 1000
    assert t[b"\0\1\2"] == b"\0" * 1000
    # a large value
    big = os.urandom(1 << 20)
    t[b"big"] = big
    assert t[b"big"] == big
    # a bytes subclass goes through the buffer protocol
    class B(bytes):
        pass

    t[B(b"sub")] = B(b"x")
    assert t[b"sub"] == b"x" and type(t[b"sub"]) is bytes


def test_iteration(table):
    t = table
    want = {b"k%d" % i: b"v%d" % i for i in range(1000)}
    for k, v in want.items():
        t[k] = v
    assert sorted(t) == sorted(want)
    assert sorted(t.keys()) == sorted(want)
    assert sorted(t.values()) == sorted(want.values())
    assert dict(t.items()) == want
    assert dict(t) == want  # Mapping: keys() then t[k]
    # a snapshot: changing the table while iterating is safe
    for k in t:
        del t[k]
    assert len(t) == 0 and list(t) == [] and t.items() == []


def test_put_returns_uid(table):
    t = table
    u = t.put(b"a", b"1")
    assert t.uid(b"a") == u
    assert t.put(b"a", b"2") == u  # a replaced value keeps its UID
    assert t.get_uid(u) == b"2"
    assert t.get_uid_key(u) == b"a"
    assert t.del_uid(u) is True
    assert t.del_uid(u) is False
    assert t.get_uid(u) is None and t.get_uid(u, b"d") == b"d"
    assert t.get_uid_key(u, 0) == 0
    assert t.get_uid(shf.UID_NONE) is None
    with pytest.raises(KeyError):
        t.uid(b"a")


def test_conditional_puts(table):
    t = table
    assert t.put_if_absent(b"a", b"1") is True
    assert t.put_if_absent(b"a", b"2") is False
    assert t[b"a"] == b"1"
    assert t.setdefault(b"a", b"3") == b"1"
    assert t.setdefault(b"b", b"4") == b"4" and t[b"b"] == b"4"
    assert t.setdefault(b"c", "ü") == "ü".encode()
    assert t.replace(b"a", b"5") is True and t[b"a"] == b"5"
    assert t.replace(b"zz", b"5") is False and b"zz" not in t
    assert t.cas(b"a", b"5", b"6") is True and t[b"a"] == b"6"
    assert t.cas(b"a", b"5", b"7") is False and t[b"a"] == b"6"
    assert t.cas(b"zz", b"5", b"7") is False and b"zz" not in t
    assert t.cas(b"zz", None, b"8") is True and t[b"zz"] == b"8"
    assert t.cas(b"zz", None, b"9") is False and t[b"zz"] == b"8"
    assert t.delete(b"zz") is True and t.delete(b"zz") is False


def test_add_counter(table):
    t = table
    assert t.add(b"n") == 1
    assert t.add(b"n", 41) == 42
    assert t.add(b"n", -2) == 40
    assert struct.unpack("=q", t[b"n"]) == (40,)
    assert t.add(b"n", 0) == 40  # reads it
    assert t.add(b"n", -40) == 0 and b"n" not in t  # 0 deletes
    assert t.add(b"absent", 0) == 0 and b"absent" not in t
    assert t.add(b"m", -(2**63)) == -(2**63)
    t[b"s"] = b"not8"
    with pytest.raises(ValueError):
        t.add(b"s")
    assert t[b"s"] == b"not8"


def test_get_many(table):
    t = table
    for i in range(5000):
        t[b"k%d" % i] = b"v%d" % i
    keys = [b"k%d" % i for i in range(0, 10000, 3)]
    got = t.get_many(keys)
    assert got == [t.get(k) for k in keys]
    assert t.get_many(keys, b"-")[-1] == b"-"
    assert t.get_many([]) == []
    assert t.get_many(iter([b"k1", "k2", bytearray(b"k3")])) == [
        b"v1",
        b"v2",
        b"v3",
    ]
    assert t.get_many((b"k1", b"k1")) == [b"v1", b"v1"]
    # values larger than the first guess of the buffer: asked again
    big = [os.urandom(n) for n in (10, 100000, 3, 1 << 20, 70000)]
    for i, v in enumerate(big):
        t[b"big%d" % i] = v
    ks = [b"big%d" % i for i in range(len(big))] + [b"none"]
    assert t.get_many(ks) == big + [None]
    assert t.get_many(ks * 3) == (big + [None]) * 3


def test_update_and_clear(table):
    t = table
    t.update({b"a": b"1", "b": "2"})
    t.update([(b"c", b"3")])
    t.update()
    assert dict(t.items()) == {b"a": b"1", b"b": b"2", b"c": b"3"}
    with pytest.raises(ValueError):
        t.update([(b"a", b"1", b"x")])
    t.clear()
    assert len(t) == 0


def test_stats(table):
    t = table
    for i in range(100):
        t[b"%d" % i] = b"x"
    t.get(b"1")
    t.get(b"none")
    s = t.stats()
    assert s["keys"] == 100 and s["puts"] >= 100
    assert s["shards"] == 256 and s["hits"] >= 1 and s["misses"] >= 1
    for f in ("bytes_file", "bytes_used", "bytes_free", "splits",
              "lock_waits", "recoveries", "dels", "fixed_key_len",
              "fixed_val_len", "layout", "ttl_default_ms", "byte_budget",
              "bytes_cached", "evictions", "expirations", "leases",
              "lease_waits"):
        assert isinstance(s[f], int)
    assert t.check() == []
    assert t.check(repair=True) == []


def test_fixed_len(table):
    t = table
    t.set_fixed_len(4, 8)
    t[b"abcd"] = b"12345678"
    with pytest.raises(ValueError):
        t[b"abc"] = b"12345678"
    with pytest.raises(OSError):
        t.set_fixed_len(5, 8)  # EBUSY: not empty, other lengths
    assert t.stats()["fixed_key_len"] == 4


def test_life_cycle(name):
    with shf.Table(DIR, name) as t:
        t[b"a"] = b"1"
        assert not t.closed and t.name == name and t.path == DIR
        assert repr(t) == "<shf.Table '%s/%s.shf'>" % (DIR, name)
    assert t.closed and "closed" in repr(t)
    t.close()  # twice is fine
    t2 = shf.Table.attach_existing(DIR, name)
    assert t2[b"a"] == b"1"
    t3 = shf.Table(DIR, name, create=False)
    assert t3[b"a"] == b"1"
    t3.close()
    assert t2.unlink().startswith("removed")
    assert t2.closed
    assert not os.path.exists(os.path.join(DIR, name + ".shf"))
    with pytest.raises(FileNotFoundError):
        shf.Table.attach_existing(DIR, name)
    with pytest.raises(FileNotFoundError):
        shf.Table(DIR, name, create=False)


def test_path_types(name):
    import pathlib

    with shf.Table(pathlib.Path(DIR), name) as t:
        assert t.path == DIR
    with shf.Table(DIR.encode(), name) as t:
        assert t.path == DIR
    remove(name)


def test_two_handles_one_table(name):
    a = shf.Table(DIR, name)
    b = shf.Table(DIR, name)
    a[b"k"] = b"v"
    assert b[b"k"] == b"v"
    del b[b"k"]
    assert b"k" not in a
    a.close()
    b.close()


def test_pickle_attaches_the_same_table(table):
    table[b"k"] = b"v"
    t2 = pickle.loads(pickle.dumps(table))
    assert t2 is not table and t2[b"k"] == b"v"
    t2.close()


def test_subclass(name):
    class T(shf.Table):
        def double(self, k):
            return self[k] * 2

    with T(DIR, name) as t:
        t[b"k"] = b"ab"
        assert t.double(b"k") == b"abab"


def test_delete_on_exit(name):
    # the monitor removes the table once this process is gone; here it
    # is removed first, and the monitor finds nothing to do
    t = shf.Table(DIR, name, delete_on_exit=True)
    t[b"k"] = b"v"
    t.unlink()


def test_file_mode(name):
    shf.set_file_mode(0o640)
    try:
        with shf.Table(DIR, name):
            pass
        assert os.stat(os.path.join(DIR, name + ".shf")).st_mode & 0o777 == 0o640
    finally:
        shf.set_file_mode(0o600)


def test_docstrings_and_signatures():
    import inspect

    assert "shared" in shf.__doc__
    for m in ("get", "get_many", "put", "get_or_lease", "cas", "add", "uid",
              "stats", "check", "close", "unlink"):
        f = getattr(shf.Table, m)
        assert f.__doc__, m
        inspect.signature(f)  # the docstring's signature parses
    assert "key" in str(inspect.signature(shf.Table.get_or_lease))
    assert shf.Lease.__doc__ and shf.Table.__doc__


def test_many_tables_open_and_closed():
    for i in range(50):
        n = table_name("many")
        t = shf.Table(DIR, n)
        t[b"%d" % i] = b"x"
        t.unlink()
