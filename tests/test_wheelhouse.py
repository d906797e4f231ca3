"""The offline wheelhouse, built and checked against a local index of generated wheels: no network."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

import wheels as wheelhouse
from wheels import build, check, missing, platform_tags, read_freeze, requirements

ROOT = Path(__file__).resolve().parents[1]
PLATFORMS = platform_tags()


def make_wheel(folder: Path, name: str, version: str, requires=()) -> None:
    stem = f"{name}-{version}"
    with zipfile.ZipFile(folder / f"{stem}-py3-none-any.whl", "w") as wheel:
        meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        meta += "".join(f"Requires-Dist: {r}\n" for r in requires)
        wheel.writestr(f"{stem}.dist-info/METADATA", meta)
        wheel.writestr(f"{stem}.dist-info/WHEEL",
                       "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr(f"{stem}.dist-info/RECORD", "")


@pytest.fixture
def index(tmp_path):
    """alpha needs beta>=2 and gamma; gamma needs delta; beta comes in 1.0, 2.0 and 3.0."""
    folder = tmp_path / "index"
    folder.mkdir()
    make_wheel(folder, "alpha", "1.0", ["beta>=2", "gamma"])
    for version in ("1.0", "2.0", "3.0"):
        make_wheel(folder, "beta", version)
    make_wheel(folder, "gamma", "1.0", ["delta", "epsilon; python_version < '3.8'"])
    make_wheel(folder, "delta", "1.0")
    return ("--no-index", "--find-links", str(folder))


REQS = [Requirement("alpha"), Requirement("beta>=1")]


def test_the_wheelhouse_holds_what_the_node_lacks_at_the_nodes_versions(index, tmp_path):
    installed = {"beta": Version("2.0"), "delta": Version("1.0")}
    wheels = build(tmp_path / "wh", REQS, installed, python_version="3.12", platforms=PLATFORMS,
                   index_options=index)
    assert sorted(w.name for w in wheels) == ["alpha-1.0-py3-none-any.whl", "gamma-1.0-py3-none-any.whl"]
    assert check(tmp_path / "wh", REQS, installed, python_version="3.12", platforms=PLATFORMS) is None
    (tmp_path / "wh" / "gamma-1.0-py3-none-any.whl").unlink()
    problem = check(tmp_path / "wh", REQS, installed, python_version="3.12", platforms=PLATFORMS)
    assert problem and "gamma" in problem


def test_a_node_version_that_conflicts_is_an_error_naming_it(index, tmp_path):
    with pytest.raises(wheelhouse.WheelhouseError, match="beta"):
        build(tmp_path / "wh", REQS, {"beta": Version("1.0")}, python_version="3.12",
              platforms=PLATFORMS, index_options=index)


def test_requirements_are_the_projects_and_markers_are_the_nodes():
    names = {r.name for r in requirements(ROOT / "pyproject.toml")}
    assert {"torch", "albumentations", "pycocotools", "onnxruntime"} <= names
    reqs = [Requirement("a>=2"), Requirement("b; python_version < '3.11'"), Requirement("c")]
    assert [r.name for r in missing(reqs, {"a": Version("1.5"), "c": Version("1")}, "3.12")] == ["a"]
    assert [r.name for r in missing(reqs, {"a": Version("2"), "c": Version("1")}, "3.10")] == ["b"]


def test_a_freeze_line_that_is_not_name_version_names_file_and_line(tmp_path):
    path = tmp_path / "node.txt"
    path.write_text("# comment\ntorch==2.11.0\nnumpy\n")
    with pytest.raises(ValueError, match=r"node.txt:3: expected name==version"):
        read_freeze(path)
    assert read_freeze(ROOT / "configs/gpu_nodes/nvidia-h200.txt")["torch"] == Version("2.11.0")


def test_ensure_installs_into_a_temporary_target_or_names_the_missing_wheel(index, tmp_path, monkeypatch,
                                                                            capsys):
    """On the node: a requirement met from the wheelhouse lands in a temporary folder on sys.path;
    an absent one the wheelhouse lacks is an error naming the package and `make wheelhouse`; one
    installed but older than asked is a warning, and the check goes on."""
    folder = tmp_path / "wh"
    build(folder, REQS, {"beta": Version("2.0")}, python_version="3.12", platforms=PLATFORMS,
          index_options=index)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("PYTHONPATH", "")
    target = wheelhouse.ensure([Requirement("alpha")], folder)
    assert target is not None and sys.path[0] == str(target)
    assert sorted(p.name for p in target.glob("*.dist-info")) == [
        "alpha-1.0.dist-info", "delta-1.0.dist-info", "gamma-1.0.dist-info"]
    assert wheelhouse.ensure([Requirement("pytest")], folder) is None  # met here: nothing installed
    with pytest.raises(wheelhouse.WheelhouseError, match=r"zeta.*make wheelhouse"):
        wheelhouse.ensure([Requirement("zeta")], folder)
    assert wheelhouse.ensure([Requirement("pytest>=999")], folder) is None  # installed, older: a warning
    assert "warning: pytest" in capsys.readouterr().err


def test_the_tool_checks_its_wheelhouse(index, tmp_path):
    node = tmp_path / "node.txt"
    node.write_text("beta==2.0\ndelta==1.0\n")
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"\ndependencies = ["alpha", "beta>=1"]\n'
                         '[project.optional-dependencies]\nexport = []\n')
    done = subprocess.run([sys.executable, str(ROOT / "bench/wheelhouse.py"), "--installed", str(node),
                           "--pyproject", str(pyproject), "--out", str(tmp_path / "wh"),
                           *[f"--pip-option={o}" for o in index]], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "2 wheels" in done.stdout and "complete" in done.stdout
