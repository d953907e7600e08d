"""pyproject.toml and envs/latentedit.yaml declare the same runtime dependencies with the same version specs."""

from __future__ import annotations

import re
import tomllib

import pytest
import yaml

_REQ = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(.*?)\s*$")
NOT_PACKAGES = {"python", "pip"}  # the conda env's interpreter and installer, not library dependencies


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503 normalisation


def _spec(spec: str) -> str:
    return ",".join(sorted(part.replace(" ", "") for part in spec.split(",") if part.strip()))


def _parse(reqs) -> dict[str, str]:
    out = {}
    for r in reqs:
        m = _REQ.match(r)
        assert m, f"cannot parse requirement {r!r}"
        name, spec = _name(m.group(1)), _spec(m.group(2))
        assert name not in out, f"{name} listed twice"
        out[name] = spec
    return out


@pytest.fixture(scope="module")
def pyproject(repo_root):
    return tomllib.loads((repo_root / "pyproject.toml").read_text())


@pytest.fixture(scope="module")
def env(repo_root):
    """(conda dependencies, pip dependencies) of envs/latentedit.yaml, each {name: spec}."""
    deps = yaml.safe_load((repo_root / "envs" / "latentedit.yaml").read_text())["dependencies"]
    conda = [d for d in deps if isinstance(d, str)]
    pips = [d["pip"] for d in deps if isinstance(d, dict) and "pip" in d]
    assert len(pips) <= 1
    return _parse(conda), _parse(pips[0] if pips else [])


def test_every_dependency_in_env_with_same_spec(pyproject, env):
    conda, pip = env
    in_env = {**conda, **pip}
    assert not set(conda) & set(pip), "a package is both a conda and a pip dependency"
    for name, spec in _parse(pyproject["project"]["dependencies"]).items():
        assert name in in_env, f"{name} is in pyproject.toml but not in envs/latentedit.yaml"
        assert in_env[name] == spec, f"{name}: pyproject {spec!r} vs env {in_env[name]!r}"


def test_env_has_nothing_extra(pyproject, env):
    conda, pip = env
    declared = set(_parse(pyproject["project"]["dependencies"]))
    declared |= set(_parse(pyproject["project"]["optional-dependencies"]["faces"]))  # the env serves both worlds
    extra = (set(conda) | set(pip)) - declared - NOT_PACKAGES
    assert not extra, f"in envs/latentedit.yaml but not in pyproject.toml: {sorted(extra)}"


def test_torch_pinned_exactly_in_both(pyproject, env):
    conda, pip = env
    assert _parse(pyproject["project"]["dependencies"])["torch"] == "==2.13.0"
    # conda-forge calls it pytorch; the pinned wheel must come from pip
    assert pip.get("torch") == "==2.13.0"
    assert "torch" not in conda and "pytorch" not in conda


def test_env_python_satisfies_requires_python(pyproject, env):
    conda, _ = env
    m = re.fullmatch(r">=(\d+)\.(\d+)", pyproject["project"]["requires-python"])
    assert m
    env_py = re.fullmatch(r"=+(\d+)\.(\d+)", conda["python"])
    assert env_py, conda["python"]
    assert tuple(map(int, env_py.groups())) >= tuple(map(int, m.groups()))


def test_test_extra_present(pyproject):
    extra = _parse(pyproject["project"]["optional-dependencies"]["test"])
    assert {"pytest", "hypothesis"} <= set(extra)
