"""environment.yml and pyproject.toml describe the same installation."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_environment_installs_the_pyproject_with_dev_extra():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    pip_sections = [d["pip"] for d in deps if isinstance(d, dict) and "pip" in d]
    assert pip_sections == [["-e .[dev]"]], "environment.yml must install the project, nothing else, via pip"
    assert "pip" in deps
    python = next(d for d in deps if isinstance(d, str) and d.startswith("python"))
    assert python.removeprefix("python") == _pyproject()["project"]["requires-python"]


def test_dependency_ranges_admit_the_supported_torch():
    deps = {re.split(r"[<>=!~ \[]", d, maxsplit=1)[0]: d for d in _pyproject()["project"]["dependencies"]}
    from packaging.specifiers import SpecifierSet

    for name, version in [("torch", "2.14.1"), ("torchvision", "0.29.1")]:
        spec = SpecifierSet(deps[name].removeprefix(name))
        assert version in spec, f"{deps[name]} must admit {name}=={version}"
    pinned = [d for d in deps.values() if "==" in d]
    assert not pinned, f"use ranges, not pins: {pinned}"


def test_dev_extra_has_the_test_tools():
    dev = " ".join(_pyproject()["project"]["optional-dependencies"]["dev"])
    for tool in ("pytest", "nbval", "ruff"):
        assert tool in dev
