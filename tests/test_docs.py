"""The Python snippets of README.md and docs/*.rst run.

Every ``.. code-block:: python`` of a page (and every fenced python block of the
README) is one test; the snippets of a page run in order in one namespace, in a
temporary working directory, as a reader would paste them one after the other.

A snippet that cannot run here -- it needs the network, the paper's Zenodo data
or hours of training -- is marked on the line before it, with the reason, by a
comment the rendered page does not show::

    .. sfnet-snippet: skip -- needs the network (SkyServer)

    <!-- sfnet-snippet: skip -- needs the network -->       (Markdown)

The reason is shown by ``pytest -ra``.  Pages that start from "a fitted model"
(``model``) and galaxies it did not train on (``valid``, ``sample``) get them
from `FITTED`, run once for all of them.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.rst"))]

_SKIP = re.compile(r"^\s*(?:\.\.|<!--)\s*sfnet-snippet:\s*skip\s*(?:--|:)?\s*(.*?)\s*(?:-->)?\s*$")
_RST_PYTHON = re.compile(r"^(\s*)\.\. code-block::\s*python\s*$")
_MD_PYTHON = re.compile(r"^```python\s*$")
_PYTHON_LINE = re.compile(r"^\s*(import \w|from [\w.]+ import )")

#: What a page that starts from a fitted model may assume: a small model of the mock.
FITTED = """
from sfnet import SparseFeatureNet, interpret
from sfnet.datasets import make_mock_galaxies

galaxies = make_mock_galaxies(400, image_size=32, seed=0).select("metallicity")
train, valid = galaxies.split(0.2, seed=0)
model = SparseFeatureNet(k=4, epochs=2, random_state=0, progress=False).fit(train)
sample = valid
"""
PRELUDES = {"uncertainty.rst": FITTED, "interpreting.rst": FITTED}

pytestmark = pytest.mark.skipif(not (ROOT / "docs").is_dir(),
                                reason="needs the source tree (docs/)")


def _skip_reason(lines, start):
    """The reason of a skip marker on the last non-blank line before ``start``, or None."""
    i = start - 1
    while i >= 0 and not lines[i].strip():
        i -= 1
    if i >= 0 and (m := _SKIP.match(lines[i])):
        return m.group(1) or ""
    return None


def _rst_blocks(lines):
    i = 0
    while i < len(lines):
        m = _RST_PYTHON.match(lines[i])
        if not m:
            i += 1
            continue
        start, indent = i, len(m.group(1))
        i += 1
        while i < len(lines) and lines[i].strip().startswith(":"):  # directive options
            i += 1
        body = []
        while i < len(lines) and (not lines[i].strip()
                                  or len(lines[i]) - len(lines[i].lstrip()) > indent):
            body.append(lines[i])
            i += 1
        width = min(len(b) - len(b.lstrip()) for b in body if b.strip())
        yield start, "\n".join(b[width:] for b in body).strip("\n")


def _md_blocks(lines):
    i = 0
    while i < len(lines):
        if not _MD_PYTHON.match(lines[i]):
            i += 1
            continue
        start, body = i, []
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        yield start, "\n".join(body)


def snippets(page):
    """[(line number, code, skip reason or None)] of a page, in order."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks = _md_blocks(lines) if page.suffix == ".md" else _rst_blocks(lines)
    return [(start + 1, code, _skip_reason(lines, start)) for start, code in blocks]


def _cases():
    for page in PAGES:
        for line, code, reason in snippets(page):
            name = f"{page.relative_to(ROOT)}:{line}"
            marks = [pytest.mark.skip(reason=f"{name}: {reason}")] if reason is not None else []
            yield pytest.param(page, line, code, id=name, marks=marks)


_PRELUDES_RUN = {}  # prelude code -> the namespace it made
_NAMESPACES = {}  # page -> the namespace its snippets share
_FAILED = {}  # page -> the first snippet of it that failed


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("doc-snippets")


@pytest.mark.parametrize("page, line, code", list(_cases()))
def test_snippet_runs(page, line, code, workdir, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    name = str(page.relative_to(ROOT))
    if page in _FAILED:
        pytest.fail(f"{name}:{line} follows the failed snippet at line {_FAILED[page]}")
    where = workdir / page.name.replace(".", "_")
    where.mkdir(exist_ok=True)
    monkeypatch.chdir(where)
    if page not in _NAMESPACES:
        namespace = {"__name__": "__doc_snippet__"}
        if (prelude := PRELUDES.get(page.name)) is not None:
            if prelude not in _PRELUDES_RUN:
                ran = {"__name__": "__doc_prelude__"}
                exec(compile(prelude, f"prelude of {name}", "exec"), ran)
                _PRELUDES_RUN[prelude] = ran
            namespace.update(_PRELUDES_RUN[prelude])
        _NAMESPACES[page] = namespace
    namespace = _NAMESPACES[page]
    try:
        exec(compile(code, f"{name}:{line}", "exec"), namespace)
    except BaseException:
        _FAILED[page] = line
        raise
    finally:
        plt.close("all")


def test_every_python_snippet_is_collected_and_every_skip_says_why():
    found = {page: snippets(page) for page in PAGES}
    assert sum(len(s) for s in found.values()) >= 15  # the extraction works
    for page, items in found.items():
        for line, code, reason in items:
            assert code.strip(), f"{page}:{line}: empty snippet"
            assert reason is None or len(reason) > 10, \
                f"{page}:{line}: a skipped snippet must say why"
    # Python written as a plain literal block (``::``) would escape the tests
    for page in PAGES[1:]:
        lines = page.read_text(encoding="utf-8").splitlines()
        for i, text in enumerate(lines):
            if not text.rstrip().endswith("::") or text.lstrip().startswith(".. "):
                continue
            following = [t for t in lines[i + 1:i + 8] if t.strip()]
            assert not (following and _PYTHON_LINE.match(following[0])), \
                f"{page.name}:{i + 1}: Python in a literal block; use '.. code-block:: python'"


def test_a_skip_marker_needs_the_snippet_right_after_it(tmp_path):
    page = tmp_path / "page.rst"
    page.write_text("Text.\n\n.. sfnet-snippet: skip -- needs the network\n\n"
                    ".. code-block:: python\n\n   import os\n   x = 1\n\n"
                    ".. code-block:: python\n\n   y = 2\n", encoding="utf-8")
    assert snippets(page) == [(5, "import os\nx = 1", "needs the network"), (10, "y = 2", None)]
    md = tmp_path / "README.md"
    md.write_text("<!-- sfnet-snippet: skip -- no data -->\n```python\nz = 3\n```\n",
                  encoding="utf-8")
    assert snippets(md) == [(2, "z = 3", "no data")]
