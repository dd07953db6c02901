"""What a reader on Colab meets: the install cell of every chapter, pinned to a release by .ci/release.py,
the Python versions the package accepts, and chapter 0's fall-back when Fashion-MNIST cannot be had.

Cells are run here with ``exec`` in a plain namespace (no kernel); pip and torchvision's download are
replaced by stand-ins, so nothing needs a network.
"""
from __future__ import annotations

import gzip
import importlib.util
import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

import cyclegan_edu
from cyclegan_edu.domains import real

REPO = Path(__file__).resolve().parents[1]
CHAPTER_0 = REPO / "notebooks" / "00_unpaired_translation.ipynb"


def load_release():
    spec = importlib.util.spec_from_file_location("release", REPO / ".ci" / "release.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


release = load_release()
NOTEBOOKS = release.notebooks(REPO)         # the chapters and the problem sets (notebooks/problems/)


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def install_cell(path: Path) -> str:
    return next(source(c) for c in cells(path) if c["cell_type"] == "code")


# ---------------------------------------------------------------- the install cell and the release pin

def test_every_install_cell_is_the_release_cell_pinned_to_this_version():
    assert len(NOTEBOOKS) >= 5 and REPO / "notebooks" / "problems" / "P1_losses.ipynb" in NOTEBOOKS
    expected = release.install_cell(cyclegan_edu.__version__)
    assert f"git+https://github.com/cyclegan-edu/cyclegan-edu@v{cyclegan_edu.__version__}\"" in expected
    for path in NOTEBOOKS:
        assert install_cell(path) == expected, f"{path.name}: run python .ci/release.py {cyclegan_edu.__version__}"


@pytest.fixture
def on_colab(monkeypatch):
    """Run the install cell as on Colab: ``google.colab`` imported, ``subprocess.run`` recorded and
    answered with ``on_colab.answer`` (a CompletedProcess)."""
    state = types.SimpleNamespace(calls=[], answer=None)

    def fake_run(command, **kwargs):
        state.calls.append((command, kwargs))
        return subprocess.CompletedProcess(command, state.answer[0], state.answer[1], None)

    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(subprocess, "run", fake_run)
    return state


def test_install_cell_shows_pips_output_and_stops_with_one_line_when_pip_fails(on_colab, capsys):
    pip_says = ("Collecting git+https://github.com/cyclegan-edu/cyclegan-edu@v0.1.0\n"
                "ERROR: Error [Errno -3] Temporary failure in name resolution while executing command git clone\n")
    on_colab.answer = (1, pip_says)
    with pytest.raises(RuntimeError) as info:
        exec(install_cell(CHAPTER_0), {})
    [(command, kwargs)] = on_colab.calls
    package = f"git+https://github.com/cyclegan-edu/cyclegan-edu@v{cyclegan_edu.__version__}"
    assert command == [sys.executable, "-m", "pip", "install", package]      # not -q: pip's output is kept
    assert kwargs.get("stderr") is subprocess.STDOUT and "check" not in kwargs
    assert pip_says in capsys.readouterr().out
    message = str(info.value)
    assert message.startswith(f"pip could not install {package} (see its output above)") and "\n" not in message
    assert "run this cell again" in message


def test_install_cell_installs_quietly_on_colab_and_does_nothing_elsewhere(on_colab, capsys, monkeypatch):
    on_colab.answer = (0, "Successfully installed cyclegan-edu-0.1.0\n")
    exec(install_cell(CHAPTER_0), {})
    assert len(on_colab.calls) == 1
    assert capsys.readouterr().out == f"installed git+https://github.com/cyclegan-edu/cyclegan-edu@v{cyclegan_edu.__version__}\n"
    monkeypatch.delitem(sys.modules, "google.colab")
    exec(install_cell(CHAPTER_0), {})
    assert len(on_colab.calls) == 1 and capsys.readouterr().out == ""


@pytest.fixture
def repo_copy(tmp_path) -> Path:
    """The notebooks and cyclegan_edu/__init__.py, copied into a repository-shaped temp folder."""
    (tmp_path / "cyclegan_edu").mkdir()
    for path in NOTEBOOKS:
        copy = tmp_path / path.relative_to(REPO)
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_bytes(path.read_bytes())
    (tmp_path / "cyclegan_edu" / "__init__.py").write_bytes((REPO / "cyclegan_edu" / "__init__.py").read_bytes())
    return tmp_path


def run_release(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / ".ci" / "release.py"), *args], capture_output=True, text=True,
                          timeout=60)


def test_release_script_sets_the_version_and_rewrites_every_pin(repo_copy):
    done = run_release("0.2.0", "--root", str(repo_copy))
    assert done.returncode == 0, done.stderr
    assert "git tag v0.2.0" in done.stdout
    assert '__version__ = "0.2.0"\n' in (repo_copy / "cyclegan_edu" / "__init__.py").read_text()
    for path in NOTEBOOKS:
        copy = repo_copy / path.relative_to(REPO)
        text = copy.read_text(encoding="utf-8")
        assert text.endswith("}\n") and json.loads(text)["nbformat"] == 4
        new_install = install_cell(copy)
        assert new_install == release.install_cell("0.2.0") and "cyclegan-edu@v0.2.0\"" in new_install
        old, new = cells(path), cells(copy)
        first = next(i for i, c in enumerate(old) if c["cell_type"] == "code")
        assert new[:first] + new[first + 1:] == old[:first] + old[first + 1:]   # every other cell untouched
        assert {k: v for k, v in new[first].items() if k != "source"} == \
            {k: v for k, v in old[first].items() if k != "source"}


def test_release_script_refuses_bad_input_and_writes_nothing(repo_copy):
    before = {p: p.read_bytes() for p in repo_copy.rglob("*") if p.is_file()}
    done = run_release("v0.2", "--root", str(repo_copy))
    assert done.returncode == 2 and done.stderr.startswith("error: version 'v0.2' is not like 0.2.0")
    notebook = repo_copy / NOTEBOOKS[-1].relative_to(REPO)   # one notebook whose first code cell is another one
    data = json.loads(notebook.read_text(encoding="utf-8"))
    data["cells"].insert(0, {"cell_type": "code", "execution_count": None, "id": "new", "metadata": {},
                             "outputs": [], "source": ["print('mine')"]})
    notebook.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    before[notebook] = notebook.read_bytes()
    done = run_release("0.2.0", "--root", str(repo_copy))
    assert done.returncode == 2 and "is not the Colab install cell" in done.stderr and "\n" not in done.stderr[:-1]
    assert {p: p.read_bytes() for p in repo_copy.rglob("*") if p.is_file()} == before


# ---------------------------------------------------------------- Python versions

def test_pyproject_takes_its_version_from_the_package_and_caps_no_python():
    tomllib = pytest.importorskip("tomllib")
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    project = pyproject["project"]
    assert "version" not in project and project["dynamic"] == ["version"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "cyclegan_edu.__version__"}
    assert project["requires-python"] == ">=3.10"            # no upper bound: Colab's next Python installs


def test_readme_and_setup_page_say_python_3_10_or_newer():
    for page in (REPO / "README.md", REPO / "book" / "setup.md"):
        text = page.read_text(encoding="utf-8")
        assert "Python 3.10 or newer" in text and "3.13" not in text, page.name


# ---------------------------------------------------------------- chapter 0 without Fashion-MNIST

IMAGES = np.arange(20 * 28 * 28, dtype=np.uint64).reshape(20, 28, 28).astype(np.uint8)
LABELS = np.arange(20, dtype=np.uint8) % 10


def idx_gz(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return gzip.compress(header + array.tobytes())


def fake_torchvision(fetch) -> types.ModuleType:
    """A stand-in ``torchvision`` whose ``datasets.FashionMNIST(root, train, download)`` records the
    call and runs ``fetch(raw_folder)``, the folder torchvision downloads into."""
    module = types.ModuleType("torchvision")
    module.calls = []

    def fashion_mnist(root, train=True, download=False):
        module.calls.append((root, train, download))
        raw = Path(root) / "FashionMNIST" / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        fetch(raw)

    module.datasets = types.SimpleNamespace(FashionMNIST=fashion_mnist)
    return module


def offline(raw: Path):
    raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried http://fashion-mnist.example/, got:\n"
                       "<urlopen error [Errno -3] Temporary failure in name resolution>\n")


def complete(raw: Path, last: int = 4):
    """torchvision's order: each archive written, checked and unpacked in turn."""
    stems = [stem for pair in real.FASHION_FILES.values() for stem in pair]
    for stem in stems[:last]:
        data = idx_gz(IMAGES if "images" in stem else LABELS)
        (raw / f"{stem}.gz").write_bytes(data)
        (raw / stem).write_bytes(gzip.decompress(data))


def broken(raw: Path):
    """Three files, then the fourth archive cut short: it fails the MD5 check and is left behind."""
    complete(raw, last=3)
    (raw / "t10k-labels-idx1-ubyte.gz").write_bytes(idx_gz(LABELS)[:10])
    raise RuntimeError("File not found or corrupted.")


@pytest.fixture
def no_fashion_installed(tmp_path, monkeypatch) -> Path:
    """No Debian package, no $CYCLEGAN_EDU_FASHION_MNIST, an empty cache; returns the cache."""
    monkeypatch.setattr(real, "FASHION_DIRS", (tmp_path / "usr-share",))
    monkeypatch.delenv(real.FASHION_ENV, raising=False)
    monkeypatch.setenv("CYCLEGAN_EDU_DATA", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_a_broken_fashion_download_is_fetched_again_not_read(no_fashion_installed, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", fake_torchvision(broken))
    with pytest.raises(OSError, match=r"torchvision download failed \(RuntimeError: File not found or corrupted\.\)"):
        real.fashion_mnist("test")
    torchvision = fake_torchvision(complete)
    monkeypatch.setitem(sys.modules, "torchvision", torchvision)
    images, labels = real.fashion_mnist("test")                 # not an EOFError from the cut archive
    assert np.array_equal(images, IMAGES) and np.array_equal(labels, LABELS)
    assert len(torchvision.calls) == 1


def test_fashion_downloaded_into_the_env_folder_is_found_there_next_time(tmp_path, monkeypatch):
    monkeypatch.setenv(real.FASHION_ENV, str(tmp_path))
    torchvision = fake_torchvision(complete)
    monkeypatch.setitem(sys.modules, "torchvision", torchvision)
    for _ in range(2):
        assert np.array_equal(real.fashion_mnist("train")[1], LABELS)
    assert len(torchvision.calls) == 1                            # downloaded once, then found


def test_chapter_0_goes_on_without_fashion_mnist(no_fashion_installed, monkeypatch, capsys):
    """Offline, without the Debian package: the Fashion-MNIST section prints one line saying why and
    what to do, and every cell after it runs."""
    monkeypatch.setitem(sys.modules, "torchvision", fake_torchvision(offline))
    chapter = cells(CHAPTER_0)

    def heading(title: str) -> int:
        return next(i for i, c in enumerate(chapter) if any(line.startswith(title) for line in c["source"]))

    setup = [source(c) for c in chapter[:heading("## ")] if c["cell_type"] == "code"]   # install, imports, preset
    rest = [source(c) for c in chapter[heading("## Real images"):] if c["cell_type"] == "code"]
    assert any("sneaker2boot" in code for code in rest)
    namespace = {}
    for code in setup + rest:
        exec(code, namespace)
    lines = capsys.readouterr().out.splitlines()
    [why] = [line for line in lines if line.startswith("no Fashion-MNIST this time: ")]
    assert "Temporary failure in name resolution" in why
    assert "run this again with a network, or install it with `sudo apt-get install dataset-fashion-mnist`" in why
    assert lines[-1].startswith("preset ci: real horses skipped")   # the cells after the section ran
    assert not (no_fashion_installed / "sneaker2boot_32px_seed0_n1000-None").exists()
