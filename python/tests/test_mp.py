# SPDX-License-Identifier: LGPL-2.1-or-later
# Several processes (multiprocessing) on one table: writers and readers,
# counters, iteration while others write, a table passed to spawned
# processes, a process killed while it holds a lease, and the GIL released
# while a call waits for another process.
import multiprocessing as mp
import os
import signal
import threading
import time

import shf
from conftest import DIR

FORK = mp.get_context("fork")
TIMEOUT = 60


def run_all(ctx, target, args_list):
    procs = [ctx.Process(target=target, args=a) for a in args_list]
    for p in procs:
        p.start()
    for p in procs:
        p.join(TIMEOUT)
    for p in procs:
        if p.is_alive():  # pragma: no cover
            p.kill()
            p.join()
    return [p.exitcode for p in procs]


def writer(name, w, n):
    t = shf.Table.attach_existing(DIR, name)
    for i in range(n):
        t[b"w%d-%d" % (w, i)] = b"%d" % i
        t.add(b"counter")
        if i % 2:
            del t[b"w%d-%d" % (w, i - 1)]
            t[b"w%d-%d" % (w, i - 1)] = b"%d" % (i - 1)
    t.close()


def test_writers_and_readers(name):
    t = shf.Table(DIR, name)
    workers, n = 4, 1500
    codes = run_all(FORK, writer, [(name, w, n) for w in range(workers)])
    assert codes == [0] * workers
    assert t.add(b"counter", 0) == workers * n
    assert len(t) == workers * n + 1
    keys = [b"w%d-%d" % (w, i) for w in range(workers) for i in range(n)]
    assert t.get_many(keys) == [b"%d" % i for w in range(workers) for i in range(n)]
    assert t.check() == []
    t.unlink()


def churn(name, stop, w):
    t = shf.Table.attach_existing(DIR, name)
    i = 0
    while not stop.is_set():
        k = b"churn%d-%d" % (w, i % 500)
        t[k] = b"x" * (i % 64)
        if i % 3 == 0:
            t.delete(k)
        i += 1
    t.close()


def test_iteration_while_others_write(name):
    t = shf.Table(DIR, name)
    stable = {b"stable%d" % i: b"s%d" % i for i in range(2000)}
    t.update(stable)
    stop = FORK.Event()
    procs = [FORK.Process(target=churn, args=(name, stop, w)) for w in range(2)]
    for p in procs:
        p.start()
    try:
        end = time.monotonic() + 1.5
        walks = 0
        while time.monotonic() < end or walks < 3:
            items = dict(t.items())
            # every key that lives through the walk is seen, once
            assert all(items.get(k) == v for k, v in stable.items())
            keys = t.keys()
            assert len(keys) == len(set(keys))
            assert set(stable) <= set(keys)
            assert t.get_many(list(stable)) == list(stable.values())
            walks += 1
    finally:
        stop.set()
        for p in procs:
            p.join(TIMEOUT)
    assert [p.exitcode for p in procs] == [0, 0]
    assert t.check() == []
    t.unlink()


def spawned(table, q):
    # table came pickled: attached again, by name, in this new interpreter
    table[b"from-%d" % os.getpid()] = b"hi"
    q.put((os.getpid(), table.add(b"n")))


def test_spawned_processes_get_the_table(name):
    ctx = mp.get_context("spawn")
    t = shf.Table(DIR, name)
    q = ctx.Queue()
    codes = run_all(ctx, spawned, [(t, q), (t, q)])
    assert codes == [0, 0]
    got = sorted(q.get(timeout=10)[1] for _ in range(2))
    assert got == [1, 2]
    assert len([k for k in t if k.startswith(b"from-")]) == 2
    t.unlink()


def lease_then_die(name, granted):
    t = shf.Table.attach_existing(DIR, name)
    lease = t.get_or_lease(b"slow", lease=60)
    assert lease.leased
    granted.set()
    time.sleep(0.3)
    os.kill(os.getpid(), signal.SIGKILL)


def test_killed_while_holding_lease(name):
    t = shf.Table(DIR, name)
    granted = FORK.Event()
    p = FORK.Process(target=lease_then_die, args=(name, granted))
    p.start()
    assert granted.wait(TIMEOUT)
    # wait for the holder's value; it dies instead: the lease passes here
    spins = [0]
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            spins[0] += 1

    th = threading.Thread(target=spin)
    th.start()
    start = time.monotonic()
    try:
        with t.get_or_lease(b"slow", lease=10, wait=TIMEOUT) as lease:
            took = time.monotonic() - start
            assert lease.leased and not lease.found
            lease.value = b"computed by the survivor"
    finally:
        stop.set()
        th.join()
    p.join(TIMEOUT)
    assert p.exitcode == -signal.SIGKILL
    assert took < 20  # the death is seen within about 50 ms
    # the other thread ran while this one waited: the GIL was released
    assert spins[0] > 1000
    assert t[b"slow"] == b"computed by the survivor"
    assert t.stats()["lease_waits"] >= 1
    assert t.check() == []
    t.unlink()


def compute_once(name, ready, go, results):
    t = shf.Table.attach_existing(DIR, name)
    ready.release()
    go.wait(TIMEOUT)
    with t.get_or_lease(b"report", lease=30) as lease:
        if lease.leased:
            time.sleep(0.2)  # the expensive part
            t.add(b"computations")
            lease.value = b"made by %d" % os.getpid()
    results.put(lease.value)


def test_one_process_computes_the_others_wait(name):
    t = shf.Table(DIR, name)
    ready, go, results = FORK.Semaphore(0), FORK.Event(), FORK.Queue()
    n = 4
    procs = [FORK.Process(target=compute_once, args=(name, ready, go, results))
             for _ in range(n)]
    for p in procs:
        p.start()
    for _ in range(n):
        assert ready.acquire(timeout=TIMEOUT)
    go.set()
    vals = [results.get(timeout=TIMEOUT) for _ in range(n)]
    for p in procs:
        p.join(TIMEOUT)
    assert [p.exitcode for p in procs] == [0] * n
    assert len(set(vals)) == 1 and vals[0].startswith(b"made by ")
    assert t.add(b"computations", 0) == 1
    assert t.stats()["lease_waits"] >= 1
    t.unlink()


def fork_child_uses_inherited(t, q):
    t[b"child"] = b"c"
    q.put(t[b"parent"])


def test_fork_inherits_the_handle(table):
    table[b"parent"] = b"p"
    q = FORK.Queue()
    assert run_all(FORK, fork_child_uses_inherited, [(table, q)]) == [0]
    assert q.get(timeout=10) == b"p"
    assert table[b"child"] == b"c"


def test_bench_runs(capsys):
    # the benchmark (python3 -m shf.bench) in its shortest form
    import json

    from shf import bench

    assert bench.main(["--quick", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["results"]["shf/1"]["get"] > 0
    assert out["results"]["Manager().dict()/2"]["put"] > 0
    assert set(out["goals"]) == {"gets_per_s_1proc", "gets_vs_manager",
                                 "batched_gets_vs_dict"}
