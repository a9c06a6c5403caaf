# SPDX-License-Identifier: LGPL-2.1-or-later
"""Gets and puts per second of shf.Table from Python, beside a
multiprocessing.Manager().dict() (the standard library's way to share a
dict between processes) and a plain dict inside one process.

    python3 -m shf.bench [--keys N] [--batch N] [--manager-ops N] [--quick]

From a build tree: make python-bench, or
python/in-tree.sh python3 python/bench.py.

Phases, each process on its own keys (12-byte keys, 8-byte values):
  put    t[k] = v, one key after another
  get    t[k]
  batch  t.get_many(keys) in batches of --batch keys (dict: a list
         comprehension of d.get over the same batches)
with 1 process and with 2 processes at once (their sum).  Gets take the
best of --repeat runs.  The Manager
dict is a server process that every access goes to through a pipe.
"""

import argparse
import json
import multiprocessing as mp
import os
import platform
import sys
import time

if __name__ == "__main__" and not __package__:
    # Run as a script (python/bench.py): its directory, first on sys.path,
    # holds the source of the package shf without its extension; the one
    # to import is on PYTHONPATH (python/in-tree.sh) or installed.
    _here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and os.path.abspath(sys.path[0] or ".") == _here:
        del sys.path[0]

import shf  # noqa: E402

FORK = mp.get_context("fork")


def keys_of(proc, n):
    return [b"%04d%08d" % (proc, i) for i in range(n)]


VAL = b"v" * 8


def run_ops(stores, keys, batch, phases, repeat):
    """Time each phase over keys in each of stores, [(name, store)];
    {name: {phase: seconds}}.  Puts run once (they insert); gets take the
    best of repeat runs (as timeit does), the stores taking turns in each,
    so that other load on the machine weighs on them alike."""
    out = {name: {} for name, _ in stores}
    if "put" in phases:
        for name, store in stores:
            t0 = time.perf_counter()
            for k in keys:
                store[k] = VAL
            out[name]["put"] = time.perf_counter() - t0
    chunks = [keys[i:i + batch] for i in range(0, len(keys), batch)]
    for _ in range(repeat):
        for name, store in stores:
            if "get" in phases:
                t0 = time.perf_counter()
                for k in keys:
                    store[k]
                t = time.perf_counter() - t0
                out[name]["get"] = min(out[name].get("get", t), t)
            if "batch" in phases:
                if isinstance(store, shf.Table):
                    get_many = store.get_many
                    t0 = time.perf_counter()
                    for c in chunks:
                        get_many(c)
                else:
                    get = store.get
                    t0 = time.perf_counter()
                    for c in chunks:
                        [get(k) for k in c]
                t = time.perf_counter() - t0
                out[name]["batch"] = min(out[name].get("batch", t), t)
    return out


def child(make_stores, proc, n, batch, phases, repeat, barrier, q):
    try:
        stores = make_stores()
        keys = keys_of(proc, n)
        barrier.wait()
        q.put((proc, run_ops(stores, keys, batch, phases, repeat)))
    except BaseException as e:  # report, do not hang the parent
        q.put((proc, repr(e)))
        raise


def in_procs(make_stores, procs, n, batch, phases, repeat):
    """{name: ops/s} of procs processes at once, each on its own keys
    (summed), for each store that make_stores() gives."""
    if procs == 1:
        times = run_ops(make_stores(), keys_of(0, n), batch, phases, repeat)
        return {name: {ph: n / secs for ph, secs in t.items()}
                for name, t in times.items()}
    barrier, q = FORK.Barrier(procs), FORK.Queue()
    ps = [FORK.Process(target=child, args=(make_stores, p, n, batch, phases,
                                           repeat, barrier, q))
          for p in range(procs)]
    for p in ps:
        p.start()
    got = [q.get(timeout=600) for _ in ps]
    for p in ps:
        p.join()
    total = {}
    for _, times in got:
        if isinstance(times, str):
            raise RuntimeError("a benchmark process failed: " + times)
        for name, t in times.items():
            for ph, secs in t.items():
                total.setdefault(name, {})
                total[name][ph] = total[name].get(ph, 0.0) + n / secs
    return total


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def fmt(r):
    if r is None:
        return "-"
    if r >= 1e6:
        return "%.2f M/s" % (r / 1e6)
    return "%.1f k/s" % (r / 1e3)


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="python3 -m shf.bench",
        description=__doc__.split("\n\n")[0])
    ap.add_argument("--keys", type=int, default=200000,
                    help="keys per process (shf and dict; default 200000)")
    ap.add_argument("--manager-ops", type=int, default=20000,
                    help="keys per process for the Manager dict, which is "
                    "slow (default 20000)")
    ap.add_argument("--batch", type=int, default=1000,
                    help="keys per get_many() (default 1000)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs of each get phase, the best counts "
                    "(default 3)")
    ap.add_argument("--dir", default="/dev/shm",
                    help="where the table goes (default /dev/shm)")
    ap.add_argument("--quick", action="store_true",
                    help="a short run (a smoke test)")
    ap.add_argument("--json", action="store_true",
                    help="print the figures as JSON")
    a = ap.parse_args(argv)
    if a.quick:
        a.keys, a.manager_ops, a.repeat = 5000, 500, 1
    phases = ("put", "get", "batch")
    name = "shf-bench-py-%d" % os.getpid()
    table = shf.Table(a.dir, name)
    res = {}
    try:
        def shf_store():
            return shf.Table.attach_existing(a.dir, name)

        # one process: the table and a dict take turns
        r = in_procs(lambda: [("shf", shf_store()), ("dict", {})], 1,
                     a.keys, a.batch, phases, a.repeat)
        res[("shf", 1)], res[("dict", 1)] = r["shf"], r["dict"]
        r = in_procs(lambda: [("shf", shf_store())], 2, a.keys, a.batch,
                     phases, a.repeat)
        res[("shf", 2)] = r["shf"]
        with FORK.Manager() as manager:
            md = manager.dict()
            for procs in (1, 2):
                r = in_procs(lambda: [("m", md)], procs, a.manager_ops,
                             a.batch, ("put", "get"), 1)
                res[("Manager().dict()", procs)] = r["m"]
    finally:
        table.unlink()

    shf1, man1, d1 = (res[("shf", 1)], res[("Manager().dict()", 1)],
                      res[("dict", 1)])
    info = {
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "libshf": shf.library_version(),
        "keys": a.keys,
        "manager_ops": a.manager_ops,
        "batch": a.batch,
        "repeat": a.repeat,
    }
    goals = {
        "gets_per_s_1proc": shf1["get"],
        "gets_vs_manager": shf1["get"] / man1["get"],
        "batched_gets_vs_dict": shf1["batch"] / d1["batch"],
    }
    if a.json:
        out = dict(info)
        out["results"] = {"%s/%d" % k: v for k, v in res.items()
                          if v is not None}
        out["goals"] = goals
        json.dump(out, sys.stdout, indent=1)
        print()
        return 0
    print("shf.bench: %(cpu)s (%(cpus)s CPUs), Python %(python)s, "
          "libshf %(libshf)s" % info)
    print("%d keys per process (Manager dict: %d), batches of %d, "
          "gets: best of %d\n" % (a.keys, a.manager_ops, a.batch, a.repeat))
    print("%-18s %6s %12s %12s %14s" % ("store", "procs", "put", "get",
                                        "batched get"))
    for (store, procs), r in res.items():
        if r is None:
            continue
        print("%-18s %6d %12s %12s %14s" % (store, procs, fmt(r.get("put")),
                                            fmt(r.get("get")),
                                            fmt(r.get("batch"))))
    man2, shf2 = res[("Manager().dict()", 2)], res[("shf", 2)]
    print()
    print("goal: >= 1 M gets/s from one process:     %s  (%s)"
          % (fmt(shf1["get"]), "met" if shf1["get"] >= 1e6 else "NOT met"))
    print("goal: >= 20x Manager().dict(), 1 process:  %.0fx gets, %.0fx puts"
          "  (%s)" % (goals["gets_vs_manager"], shf1["put"] / man1["put"],
                      "met" if goals["gets_vs_manager"] >= 20 else "NOT met"))
    print("      2 processes:                         %.0fx gets, %.0fx puts"
          % (shf2["get"] / man2["get"], shf2["put"] / man2["put"]))
    print("goal: batched gets within 2x of a dict:    %.2fx of the dict's"
          " rate  (%s)" % (goals["batched_gets_vs_dict"],
                           "met" if goals["batched_gets_vs_dict"] >= 0.5
                           else "NOT met"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
