#!/usr/bin/env python
"""Print (or write) pins of the oldest dependency versions that pyproject.toml allows.

Each requirement with a lower bound (``>=X`` or ``~=X``) becomes ``name==X.*``
when X has two components (the newest patch release of the oldest allowed
minor version) and ``name==X`` otherwise; requirements without a lower bound
are left out.  Environment markers are kept.  Used by the
``py311-test-oldestdeps`` tox environment, so its pins follow pyproject.toml
instead of being copied by hand::

    python .ci/min_requirements.py --extras test --output min-requirements.txt
"""

import argparse
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def lower_bound(requirement):
    """The oldest version ``requirement`` allows, or None if it sets no lower bound."""
    bounds = [Version(spec.version) for spec in requirement.specifier
              if spec.operator in (">=", "~=", "==")]
    return max(bounds) if bounds else None


def pin(requirement):
    """``name==X.*`` / ``name==X`` for the lower bound of ``requirement`` (None without one)."""
    version = lower_bound(requirement)
    if version is None:
        return None
    release = ".".join(str(part) for part in version.release)
    text = f"{requirement.name}=={release}.*" if len(version.release) <= 2 else \
        f"{requirement.name}=={version}"
    if requirement.marker is not None:
        text += f"; {requirement.marker}"
    return text


def minimum_requirements(pyproject, extras=()):
    """The pins of the dependencies and of the named extras of ``pyproject``."""
    project = tomllib.loads(Path(pyproject).read_text(encoding="utf-8"))["project"]
    optional = project.get("optional-dependencies", {})
    unknown = [e for e in extras if e not in optional]
    if unknown:
        raise SystemExit(f"unknown extra(s) {unknown}; pyproject.toml defines {sorted(optional)}")
    texts = list(project.get("dependencies", []))
    for extra in extras:
        texts += optional[extra]
    pins = {}
    for text in texts:
        requirement = Requirement(text)
        if requirement.name == project["name"]:  # a self-reference such as sfnet[pandas]
            continue
        line = pin(requirement)
        if line is not None:
            pins.setdefault(requirement.name.lower(), line)
    return list(pins.values())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extras", nargs="*", default=[], help="extras to include too")
    parser.add_argument("--pyproject", default=str(ROOT / "pyproject.toml"))
    parser.add_argument("--output", "-o", help="write here instead of printing")
    args = parser.parse_args(argv)
    lines = minimum_requirements(args.pyproject, args.extras)
    text = "\n".join(lines) + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {len(lines)} pins to {args.output}:\n{text}", end="")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
