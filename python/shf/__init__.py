# SPDX-License-Identifier: LGPL-2.1-or-later
"""Hash tables shared by unrelated processes through memory-mapped files.

shf is the Python binding of libshf: a Table is a file, normally under
/dev/shm, that any number of processes attach by its directory and name
and use at once as a mapping of bytes to bytes, with no server between
them::

    import shf

    with shf.Table("/dev/shm", "example") as t:
        t[b"greeting"] = b"hello"       # str is stored as UTF-8
        t[b"greeting"]                  # b'hello'
        t.add(b"hits")                  # atomic counter: 1
        t.get_many([b"greeting", b"x"]) # [b'hello', None]

A process killed at any instant, even while it holds a lock, never blocks
the others and never leaves the table damaged.  See libshf-python(7),
help(shf.Table), and libshf(7) for the C library.
"""

import collections.abc as _abc

from ._shf import UID_NONE, Lease, Table, __version__, library_version, set_file_mode

__all__ = [
    "Table",
    "Lease",
    "UID_NONE",
    "library_version",
    "set_file_mode",
    "__version__",
]

# A Table reads as a Mapping (get, keys, items, in, len, iteration).  It is
# not registered as a MutableMapping: libshf has no atomic pop().
_abc.Mapping.register(Table)
