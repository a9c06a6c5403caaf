# SPDX-License-Identifier: LGPL-2.1-or-later
# The Python examples of the documentation run as shown: the EXAMPLES of
# libshf-python(7) (which tests/man-examples.sh, a compiler of C examples,
# leaves to this test) and the example of README.md's Python section.
import os
import re
import subprocess
import sys

import pytest

from conftest import DIR

SRC = os.environ.get("abs_top_srcdir") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..")

ROFF = [(r"\-", "-"), (r"\(dq", '"'), (r"\(aq", "'"), (r"\e", "\\"),
        (r"\&", "")]


def man_example(page):
    code, in_ex, out = False, False, []
    with open(page) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith(".SH "):
                in_ex = line[4:].strip().strip('"') == "EXAMPLES"
            elif in_ex and line.startswith(".EX"):
                code = True
            elif in_ex and line.startswith(".EE"):
                code = False
            elif in_ex and code:
                for a, b in ROFF:
                    line = line.replace(a, b)
                out.append(line)
    return "\n".join(out) + "\n"


def readme_example(readme):
    with open(readme) as f:
        text = f.read()
    section = text.split("\n## Python\n", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def run(code, table_prefix, tmp_path):
    src = tmp_path / "example.py"
    src.write_text(code)
    p = subprocess.Popen([sys.executable, str(src)], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, cwd=str(tmp_path))
    try:
        out, _ = p.communicate(timeout=60)
    finally:
        # the example removes its table; not if it failed half way
        stale = os.path.join(DIR, "%s-%d.shf" % (table_prefix, p.pid))
        if os.path.exists(stale):
            os.unlink(stale)
    assert p.returncode == 0, out.decode()
    return out.decode()


def test_man_page_example(tmp_path):
    page = os.path.join(SRC, "man", "man7", "libshf-python.7")
    code = man_example(page)
    assert "import shf" in code and "mp.Pool" in code
    out = run(code, "wordcount", tmp_path)
    assert out.splitlines() == [
        "2000", "[(b'brown', 1000), (b'dog', 1000), (b'fox', 1000)]"]


def test_readme_example(tmp_path):
    readme = os.path.join(SRC, "README.md")
    if not os.path.exists(readme):
        pytest.skip("no README.md in %s" % SRC)
    out = run(readme_example(readme), "squares", tmp_path)
    assert out.splitlines() == ["40 10", "[b'9', b'81', None]"]
