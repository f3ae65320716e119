"""The packaging metadata agrees with the code: declared imports, bounds, extras, tooling."""

import ast
import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"

pytestmark = pytest.mark.skipif(not PYPROJECT.exists(),
                                reason="needs the source tree (pyproject.toml)")

# Import names whose distribution is named differently, for environments where
# the distribution is not installed (importlib.metadata cannot tell then).
_DISTRIBUTIONS = {"PIL": "pillow", "sklearn": "scikit-learn", "yaml": "pyyaml"}


def _normalise(name):
    return name.lower().replace("_", "-").replace(".", "-")


def _project():
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        tomllib = pytest.importorskip("tomli")
    return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]


def _requirements(texts):
    return {_normalise(Requirement(t).name): Requirement(t) for t in texts}


def _third_party_imports():
    """{top-level module: [files]} of the absolute, non-stdlib imports in sfnet/."""
    found = {}
    for path in sorted((ROOT / "sfnet").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top != "sfnet" and top not in sys.stdlib_module_names:
                    found.setdefault(top, []).append(str(path.relative_to(ROOT)))
    return found


def _distribution(module):
    installed = importlib.metadata.packages_distributions().get(module)
    return _normalise(installed[0] if installed else _DISTRIBUTIONS.get(module, module))


def test_every_third_party_import_is_declared():
    project = _project()
    declared = set(_requirements(project["dependencies"]))
    for texts in project.get("optional-dependencies", {}).values():
        declared |= set(_requirements(texts))
    imports = _third_party_imports()
    assert {"torch", "astropy", "numpy"} <= set(imports)  # the scan works
    missing = {m: files[:3] for m, files in imports.items() if _distribution(m) not in declared}
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_every_dependency_is_imported():
    used = {_distribution(m) for m in _third_party_imports()}
    unused = [name for name in _requirements(_project()["dependencies"]) if name not in used]
    assert not unused, f"declared in [project] dependencies but never imported: {unused}"


def test_pandas_is_an_extra_and_imported_lazily():
    project = _project()
    assert "pandas" not in _requirements(project["dependencies"])
    assert "pandas" in _requirements(project["optional-dependencies"]["pandas"])
    # The whole package imports, and makes a sample, without pandas.
    code = ("import sys; sys.modules['pandas'] = None\n"
            "import sfnet, sfnet.datasets, sfnet.interpret, sfnet.cli, sfnet.baselines\n"
            "from sfnet.datasets import make_mock_galaxies\n"
            "s = make_mock_galaxies(4, image_size=16, seed=0, progress=False)\n"
            "try:\n    s.to_pandas()\nexcept ImportError as exc:\n    print(exc)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "sfnet[pandas]" in res.stdout


def test_torch_has_lower_bounds_only():
    reqs = _requirements(_project()["dependencies"])
    for name in ("torch", "torchvision"):
        ops = {spec.operator for spec in reqs[name].specifier}
        assert ops == {">="}, f"{name}: {reqs[name]} should set a lower bound only"
    # the pair CI installs first satisfies them
    assert reqs["torch"].specifier.contains("2.14.1")
    assert reqs["torchvision"].specifier.contains("0.29.1")


def test_oldest_pins_are_generated_from_pyproject(tmp_path):
    out = tmp_path / "min.txt"
    res = subprocess.run([sys.executable, str(ROOT / ".ci" / "min_requirements.py"),
                          "--extras", "test", "--output", str(out)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    pins = _requirements(out.read_text().split("\n")[:-1])
    project = _project()
    expected = _requirements(project["dependencies"] + project["optional-dependencies"]["test"])
    assert set(pins) == set(expected)
    for name, req in expected.items():
        (spec,) = pins[name].specifier
        lowest = next(s.version for s in req.specifier if s.operator == ">=")
        assert spec.operator == "==" and spec.version.startswith(lowest), (name, spec)


def test_tox_environments():
    import configparser

    ini = configparser.ConfigParser(interpolation=None)
    ini.read(ROOT / "tox.ini")
    envlist = ini["tox"]["envlist"].split()
    for env in ("py{310,311,312,313}-test", "py312-test-devdeps", "py311-test-oldestdeps",
                "codestyle", "build_docs", "linkcheck"):
        assert env in envlist
    assert "min_requirements.py" in ini["testenv"]["commands_pre"]


def test_pre_commit_and_read_the_docs_configurations():
    yaml = pytest.importorskip("yaml")
    rtd = yaml.safe_load((ROOT / ".readthedocs.yaml").read_text(encoding="utf-8"))
    assert rtd["version"] == 2
    assert (ROOT / rtd["sphinx"]["configuration"]).exists()
    assert rtd["python"]["install"][0]["extra_requirements"] == ["docs"]
    hooks = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    ids = {hook["id"] for repo in hooks["repos"] for hook in repo["hooks"]}
    assert {"ruff-check", "trailing-whitespace", "end-of-file-fixer", "check-toml"} <= ids



def test_pep639_licence_urls_and_citation():
    project = _project()
    # PEP 639: an SPDX expression and the licence file; no licence classifier beside them
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"] and (ROOT / "LICENSE").is_file()
    assert not [c for c in project["classifiers"] if c.startswith("License ::")]
    text = PYPROJECT.read_text(encoding="utf-8")
    build = text[text.index("[build-system]"):text.index("[project]")]
    assert '"setuptools>=77"' in build  # the first setuptools that reads PEP 639 fields
    assert {"Documentation", "Source", "Issues", "Changelog"} <= set(project["urls"])
    yaml = pytest.importorskip("yaml")
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert cff["license"] == project["license"]
    assert cff["version"] and cff["date-released"] and cff["repository-code"]
    assert cff["repository-code"] == project["urls"]["Source"]
