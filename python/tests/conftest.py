# SPDX-License-Identifier: LGPL-2.1-or-later
# Fixtures of the shf module's tests.  Tables are named
# shf-test-<pid>-<tag> (<pid>: the pytest process), as tests/leaks.sh
# expects: it fails the suite on any such file left once <pid> is gone.
import itertools
import os

import pytest

import shf

DIR = os.environ.get("SHF_TEST_DIR", "/dev/shm")
_seq = itertools.count()


def table_name(tag="t"):
    """A fresh table name of this process."""
    return "shf-test-%d-py-%s-%d" % (os.getpid(), tag, next(_seq))


def remove(name):
    try:
        os.unlink(os.path.join(DIR, name + ".shf"))
    except FileNotFoundError:
        pass


@pytest.fixture
def name(request):
    n = table_name(request.node.name[:40].replace("[", "-").strip("]"))
    yield n
    remove(n)


@pytest.fixture
def table(name):
    t = shf.Table(DIR, name)
    yield t
    t.close()


@pytest.fixture(scope="session", autouse=True)
def nothing_left():
    yield
    mine = "shf-test-%d-" % os.getpid()
    left = [f for f in os.listdir(DIR) if f.lstrip(".").startswith(mine)]
    for f in left:
        os.unlink(os.path.join(DIR, f))
    assert not left, "tables left behind: %r" % left
