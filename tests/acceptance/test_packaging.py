"""The package as others install and run it: environment.yml and pyproject.toml agree, the
CLI starts, and every public name exists."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import queuelab

ROOT = Path(__file__).resolve().parents[2]
CONDA_ONLY = {"python", "pip"}
CONDA_NAMES = {"redis-py": "redis"}  # conda-forge's name -> PyPI's name

# name, optional [extras], optional ">=version" with an optional ",<cap" (a dependency whose
# internals we read, pinned to the minor we test); nothing else is expected in either file.
REQUIREMENT = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*"
    r"(?:>=\s*(?P<version>[\w.]+)(?:\s*,\s*<\s*(?P<cap>[\w.]+))?)?$"
)


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_requirement(text: str, where: str) -> tuple[str, str | None]:
    match = REQUIREMENT.match(text.strip())
    assert match, f"{where}: cannot read requirement {text!r} (expected name[extras]>=version)"
    version = match["version"] if match["cap"] is None else f"{match['version']},<{match['cap']}"
    return normalise(match["name"]), version


def conda_dependencies(path: Path) -> dict[str, str | None]:
    """The ``- name>=version`` items of the top-level ``dependencies:`` list."""
    found: dict[str, str | None] = {}
    section = None
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        if not line[0].isspace():
            section = line.rstrip(":").strip() if line.endswith(":") else None
            continue
        if section != "dependencies":
            continue
        item = re.match(r"^\s+-\s+(.*)$", line)
        assert item, f"{path.name}:{number}: expected a '  - package' item, got {raw!r}"
        if item[1].strip() == "pip:":
            continue  # the pip-only packages follow, one level deeper
        name, version = parse_requirement(item[1], f"{path.name}:{number}")
        name = CONDA_NAMES.get(name, name)
        assert name not in found, f"{path.name}:{number}: {name} is listed twice"
        found[name] = version
    return {name: version for name, version in found.items() if name not in CONDA_ONLY}


def pyproject_dependencies(path: Path) -> dict[str, str | None]:
    """``dependencies`` plus every optional-dependency group."""
    project = tomllib.loads(path.read_text())["project"]
    groups = [project.get("dependencies", []), *project.get("optional-dependencies", {}).values()]
    found: dict[str, str | None] = {}
    for group in groups:
        for text in group:
            name, version = parse_requirement(text, path.name)
            if name == normalise(project["name"]):
                continue  # an extra that names others (all = queuelab-jobs[postgres,api,...])
            assert found.get(name, version) == version, f"{path.name}: {name} has two minimum versions"
            found[name] = version
    return found


def test_environment_yml_lists_the_same_packages_and_minimums_as_pyproject() -> None:
    conda = conda_dependencies(ROOT / "environment.yml")
    pip = pyproject_dependencies(ROOT / "pyproject.toml")

    assert conda, "environment.yml lists no dependencies"
    assert sorted(conda.keys() - pip.keys()) == [], "in environment.yml but not pyproject.toml"
    assert sorted(pip.keys() - conda.keys()) == [], "in pyproject.toml but not environment.yml"
    assert conda == pip


def test_every_dependency_has_a_minimum_version() -> None:
    unpinned = [name for name, version in pyproject_dependencies(ROOT / "pyproject.toml").items() if version is None]

    assert unpinned == []


@pytest.mark.parametrize("args", [["--help"], ["worker", "--help"], ["stats", "--help"]], ids=" ".join)
def test_the_cli_help_exits_zero(args: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "queuelab", *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python -m queuelab")
    assert done.stderr == ""


def test_every_public_name_exists_and_every_error_is_public() -> None:
    """ruff leaves ``__all__`` in an ``__init__.py`` unchecked (a name there may be a submodule),
    so a public name renamed away would first fail in a user's ``from queuelab import X``. And a
    caller catches an error by its public name, so every error queuelab raises is exported."""
    missing = [name for name in queuelab.__all__ if not hasattr(queuelab, name)]
    errors = [name for name, value in vars(queuelab.errors).items() if _is_error_class(value)]

    assert missing == []
    assert "InvalidArgument" in errors
    assert sorted(set(errors) - set(queuelab.__all__)) == []


def _is_error_class(value: object) -> bool:
    return isinstance(value, type) and issubclass(value, queuelab.QueuelabError)


def test_a_build_holds_every_file_of_the_package(tmp_path: Path) -> None:
    """What setuptools puts in a wheel: its build_py step, run on a copy of the tree (offline,
    unlike `pip wheel .`, which fetches the build backend). Files that are not modules (the
    committed SQL, the dashboard's static files) are there only if pyproject.toml's
    [tool.setuptools.package-data] names them."""
    source, built = tmp_path / "source", tmp_path / "lib"
    shutil.copytree(ROOT / "queuelab", source / "queuelab", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    build = [sys.executable, "-c", "from setuptools import setup; setup()", "-q", "build_py", "--build-lib", str(built)]
    done = subprocess.run(build, cwd=source, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr

    def files(root: Path) -> set[str]:
        return {p.relative_to(root).as_posix() for p in (root / "queuelab").rglob("*") if p.is_file()}

    assert sorted(files(source) - files(built)) == [], "in the package directory but not in a build"
    assert any(name.endswith(".sql") for name in files(built))


def test_the_version_is_written_once_and_the_licence_and_changelog_ship() -> None:
    """pyproject.toml reads the version from queuelab.__version__ (setuptools' dynamic
    metadata, asked here as a build would), the LICENSE says what the metadata says, and
    the changelog has a section for the version or for what is unreleased."""
    import queuelab

    asked = [sys.executable, "-c", "from setuptools import setup; setup()", "-q", "--version"]
    done = subprocess.run(asked, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == queuelab.__version__
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject
    assert 'license = { text = "MIT" }' in pyproject
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "## Unreleased" in changelog or f"## {queuelab.__version__}" in changelog
