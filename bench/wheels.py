"""Offline installs for a GPU node that has its own torch and no network.

`build` downloads (here, where pip reaches an index) the wheels of every runtime requirement the
node lacks, their own requirements included, resolved by pip for the node's Python and platform
with the node's installed versions pinned (its `pip list --format=freeze`), then keeps only the
wheels the node does not already have: one version each. `check` proves, with no index at all,
that the node's packages plus the wheelhouse satisfy every requirement (pip resolves the
requirements against the wheelhouse and a metadata-only stand-in wheel per installed package).
`ensure` runs on the node: what is missing or too old is installed from the wheelhouse into a
temporary `--target`, never into the node's environment.

Standard library and `packaging` only: this runs before the toolkit's own requirements exist.
"""

import importlib.metadata
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

EXTRAS = ("export",)  # the runtime extras the GPU check needs (onnxruntime for tools/export.py)
GLIBC = "2.28"  # manylinux tags up to this glibc; older than the node's, so a wheel found here runs there
MAKE_COMMAND = "make wheelhouse"


class WheelhouseError(Exception):
    """What the node lacks that the wheelhouse cannot give, or a resolution that failed."""


def requirements(pyproject: Path, extras=EXTRAS) -> list[Requirement]:
    """The project's runtime requirements and those of `extras`, from pyproject.toml."""
    import tomllib  # Python 3.11+; the GPU node has 3.12

    project = tomllib.loads(pyproject.read_text())["project"]
    lines = list(project["dependencies"])
    for extra in extras:
        lines += project.get("optional-dependencies", {})[extra]
    return [Requirement(line) for line in lines]


def read_freeze(path: Path) -> dict[str, Version]:
    """`name==version` lines (pip list --format=freeze; `#` comments allowed) -> {name: version}."""
    installed = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep or not name.strip() or not version.strip():
            raise ValueError(f"{path}:{number}: expected name==version (pip list --format=freeze), "
                             f"got {line!r}")
        installed[canonicalize_name(name)] = Version(version.strip())
    return installed


def platform_tags(glibc: str = GLIBC, arch: str = "x86_64") -> list[str]:
    """pip's --platform values for manylinux wheels up to `glibc` (pip matches each exactly)."""
    major, minor = map(int, glibc.split("."))
    tags = [f"manylinux_{major}_{m}_{arch}" for m in range(minor, 16, -1)]
    return tags + [f"manylinux2014_{arch}", f"manylinux2010_{arch}", f"manylinux1_{arch}"]


def target_options(python_version: str, platforms: list[str]) -> list[str]:
    options = ["--only-binary=:all:", "--implementation", "cp", "--python-version", python_version]
    for tag in platforms:
        options += ["--platform", tag]
    return options


def missing(reqs: list[Requirement], installed: dict[str, Version], python_version: str) -> list[Requirement]:
    """The requirements (markers evaluated for the node) that its installed versions do not meet."""
    environment = {**default_environment(), "python_version": python_version,
                   "python_full_version": f"{python_version}.0", "sys_platform": "linux",
                   "platform_system": "Linux"}
    absent = []
    for req in reqs:
        if req.marker is not None and not req.marker.evaluate(environment):
            continue
        version = installed.get(canonicalize_name(req.name))
        if version is None or not req.specifier.contains(version, prereleases=True):
            absent.append(req)
    return absent


def pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)


def explain(done: subprocess.CompletedProcess) -> str:
    """pip's account of a failed resolution (the conflict's causes are printed on stdout)."""
    lines = (done.stdout + done.stderr).splitlines()
    start = next((i for i, line in enumerate(lines) if "conflict is caused by" in line or "ERROR" in line),
                 max(len(lines) - 12, 0))
    return "\n".join(lines[start:]).strip()


def build(out: Path, reqs: list[Requirement], installed: dict[str, Version], *, python_version: str,
          platforms: list[str], index_options: tuple[str, ...] = ()) -> list[Path]:
    """Download the wheels the node lacks into `out` (emptied of wheels first); returns them."""
    needed = missing(reqs, installed, python_version)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.whl"):
        old.unlink()
    if not needed:
        return []
    with tempfile.TemporaryDirectory() as tmp:
        constraints = Path(tmp) / "node.txt"
        constraints.write_text("".join(f"{name}=={version}\n" for name, version in installed.items()))
        done = pip("download", "-d", tmp, "-c", str(constraints),
                   *target_options(python_version, platforms), *index_options, *map(str, needed))
        if done.returncode:
            raise WheelhouseError(f"pip could not resolve {', '.join(map(str, needed))} for Python "
                               f"{python_version} beside the node's installed versions:\n{explain(done)}")
        kept = []
        for wheel in sorted(Path(tmp).glob("*.whl")):
            name, version, _, _ = parse_wheel_filename(wheel.name)
            if installed.get(name) != version:
                kept.append(Path(out / wheel.name))
                wheel.replace(kept[-1])
    return kept


def stand_in_wheel(folder: Path, name: str, version: Version) -> Path:
    """A wheel holding only the metadata of an installed package, for pip to resolve against."""
    stem = f"{re.sub(r'[-.]+', '_', name)}-{version}"
    path = folder / f"{stem}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        info = f"{stem}.dist-info"
        wheel.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        wheel.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: stand-in\nRoot-Is-Purelib: true\n"
                                       "Tag: py3-none-any\n")
        wheel.writestr(f"{info}/RECORD", "")
    return path


def check(wheelhouse: Path, reqs: list[Requirement], installed: dict[str, Version], *,
          python_version: str, platforms: list[str]) -> str | None:
    """None when the node's packages and the wheelhouse meet every requirement, resolved by pip
    with no index; else pip's account of what is missing."""
    if not wheelhouse.is_dir():
        return f"{wheelhouse} does not exist: run `{MAKE_COMMAND}`"
    with tempfile.TemporaryDirectory() as tmp:
        stand_ins = Path(tmp) / "installed"
        stand_ins.mkdir()
        for name, version in installed.items():
            stand_in_wheel(stand_ins, name, version)
        done = pip("install", "--dry-run", "--no-index", "--find-links", str(wheelhouse),
                   "--find-links", str(stand_ins), "--target", str(Path(tmp) / "target"),
                   *target_options(python_version, platforms), *map(str, reqs))
    if done.returncode:
        return f"{wheelhouse} is incomplete for this node:\n{explain(done)}"
    return None


def installed_here() -> dict[str, Version]:
    """{name: version} of this interpreter's distributions."""
    installed = {}
    for dist in importlib.metadata.distributions():
        try:
            installed[canonicalize_name(dist.metadata["Name"])] = Version(dist.version)
        except (TypeError, ValueError):  # a broken or unversioned distribution: not counted
            continue
    return installed


def ensure(reqs: list[Requirement], wheelhouse: Path) -> Path | None:
    """On the node: install what this interpreter lacks from `wheelhouse` into a temporary folder,
    put it first on sys.path and PYTHONPATH (for the subprocesses), and return it (None when
    nothing was installed). An absent requirement the wheelhouse cannot meet is an error naming
    it; one installed in an older version than asked is a warning (what needs it fails alone)."""
    installed = installed_here()
    unmet = missing(reqs, installed, f"{sys.version_info.major}.{sys.version_info.minor}")
    wheels = sorted(wheelhouse.glob("*.whl")) if wheelhouse.is_dir() else []
    have = {parse_wheel_filename(w.name)[0]: parse_wheel_filename(w.name)[1] for w in wheels}
    lacking = [r for r in unmet if canonicalize_name(r.name) not in have
               or not r.specifier.contains(have[canonicalize_name(r.name)], prereleases=True)]
    advice = (f"On a machine with network, run `{MAKE_COMMAND}` (for this node's `pip list "
              f"--format=freeze`: INSTALLED=that-file) and bring {wheelhouse}/ with the checkout")
    absent = [r for r in lacking if canonicalize_name(r.name) not in installed]
    if absent:
        raise WheelhouseError(f"not installed here and not in {wheelhouse}/: "
                              f"{', '.join(map(str, absent))}. {advice}")
    for req in lacking:
        print(f"warning: {req.name} {installed[canonicalize_name(req.name)]} is installed here, "
              f"older than {req}; what needs the newer one may fail. {advice}", file=sys.stderr)
    if len(lacking) == len(unmet):
        return None
    target = Path(tempfile.mkdtemp(prefix="resnet_reproduce_site_"))
    done = pip("install", "-q", "--no-index", "--no-deps", "--no-compile", "--target", str(target),
               *map(str, wheels))
    if done.returncode:
        raise WheelhouseError(f"installing {', '.join(map(str, unmet))} from {wheelhouse}/ failed:\n"
                              f"{done.stderr.strip()}")
    sys.path.insert(0, str(target))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(target), os.environ.get("PYTHONPATH")]))
    importlib.invalidate_caches()
    return target
