"""The bootstrap's rebuild stamps (scripts/source_hash.sh) cover source files only: __pycache__
left by `make test` or `ros2 launch` must not make the next `make demo` rebuild the interfaces."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HASH = ROOT / "scripts" / "source_hash.sh"
# The inputs of the interface build, as scripts/bootstrap.sh lists them.
INTERFACE_INPUTS = re.search(r"IF_HASH=\$\(hash_of ([^)]*)\)", (ROOT / "scripts" / "bootstrap.sh").read_text())


def source_hash(cwd: Path, *paths: str) -> str:
    out = subprocess.run(["bash", str(HASH), *paths], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", out), out
    return out


def _package_sources(root: Path) -> None:
    (root / "launch").mkdir(parents=True)
    (root / "msg").mkdir()
    (root / "launch" / "imagine.launch.py").write_text("print('launch')\n")
    (root / "msg" / "A.msg").write_text("int32 a\n")
    (root / "package.xml").write_text("<package/>\n")


def _add_byproducts(root: Path) -> None:
    cache = root / "launch" / "__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / "imagine.launch.cpython-311.pyc").write_bytes(b"\x00compiled")
    (root / "launch" / "stray.pyc").write_bytes(b"\x01")


@pytest.fixture()
def git_checkout(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    _package_sources(tmp_path)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([*git, "add", "."], cwd=tmp_path, check=True)  # no .gitignore: only tracking decides
    return tmp_path


def test_bootstrap_stamps_use_the_source_hash():
    assert INTERFACE_INPUTS, "scripts/bootstrap.sh computes IF_HASH differently"
    script = (ROOT / "scripts" / "bootstrap.sh").read_text()
    assert 'hash_of() { "$ROOT/scripts/source_hash.sh" "$@"; }' in script


def test_pycache_in_the_real_launch_folder_leaves_the_interface_hash_unchanged():
    inputs = INTERFACE_INPUTS.group(1).split()
    cache = ROOT / "launch" / "__pycache__"
    probe = cache / "hash_probe_of_test_bootstrap_hash.cpython-311.pyc"
    existed = cache.exists()
    before = source_hash(ROOT, *inputs)
    cache.mkdir(exist_ok=True)
    try:
        probe.write_bytes(b"\x00compiled")
        assert source_hash(ROOT, *inputs) == before
    finally:
        probe.unlink(missing_ok=True)
        if not existed:
            shutil.rmtree(cache, ignore_errors=True)


def test_git_checkout_hashes_tracked_files_only(git_checkout):
    root = git_checkout
    before = source_hash(root, "package.xml", "msg", "launch")
    _add_byproducts(root)
    (root / "launch" / "notes.txt").write_text("untracked\n")
    assert source_hash(root, "package.xml", "msg", "launch") == before
    # A change to a tracked file, a rename, and a deletion all change it.
    (root / "msg" / "A.msg").write_text("int32 b\n")
    edited = source_hash(root, "package.xml", "msg", "launch")
    assert edited != before
    subprocess.run(["git", "mv", "msg/A.msg", "msg/B.msg"], cwd=root, check=True)
    renamed = source_hash(root, "package.xml", "msg", "launch")
    assert renamed != edited
    (root / "msg" / "B.msg").unlink()
    assert source_hash(root, "package.xml", "msg", "launch") not in (renamed, edited, before)


def test_outside_git_every_file_but_bytecode_counts(tmp_path):
    root = tmp_path / "unpacked"
    _package_sources(root)
    before = source_hash(root, "package.xml", "msg", "launch")
    _add_byproducts(root)
    assert source_hash(root, "package.xml", "msg", "launch") == before
    (root / "launch" / "other.launch.py").write_text("pass\n")
    assert source_hash(root, "package.xml", "msg", "launch") != before
