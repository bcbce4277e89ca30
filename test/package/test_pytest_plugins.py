"""On a ROS 2 install, launch_testing and launch_testing_ros register pytest plugins (entry points
`launch_testing`, `launch_ros`) whose hooks take pytest's removed `path` argument: under the pinned
pytest 9 they stop every run with a PluginValidationError. pytest.ini disables them (the launch test
runs through `launch_test`); this test installs stand-ins with those entry points and the same
hook signature and runs pytest with the project's pytest.ini."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# The hook as launch_testing/pytest/hooks.py and launch_testing_ros's entry point define it.
PLUGIN = textwrap.dedent("""
    def pytest_pycollect_makemodule(path, parent):
        return None
""")


def _install_plugin(site: Path, dist: str, entry_point: str, module: str) -> None:
    (site / f"{module}.py").write_text(PLUGIN)
    info = site / f"{dist}-0.0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.0.0\n")
    (info / "entry_points.txt").write_text(f"[pytest11]\n{entry_point} = {module}\n")


def _pytest(site: Path, tests: Path, *options: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "pytest", *options, "-q", "-p", "no:cacheprovider", str(tests)],
                          env=env, capture_output=True, text=True, timeout=300, cwd=tests)


def test_ros_launch_testing_plugins_do_not_break_the_suite(tmp_path):
    site, tests = tmp_path / "site", tmp_path / "tests"
    site.mkdir()
    tests.mkdir()
    _install_plugin(site, "launch_testing", "launch_testing", "stand_in_launch_testing_hooks")
    _install_plugin(site, "launch_testing_ros", "launch_ros", "stand_in_launch_testing_ros_hooks")
    (tests / "test_trivial.py").write_text("def test_runs():\n    assert True\n")

    # Without the project's settings: the failure the stand-ins reproduce.
    bare = _pytest(site, tests, "-c", os.devnull)
    assert bare.returncode != 0 and "PluginValidationError" in bare.stdout + bare.stderr, bare.stdout + bare.stderr
    # With pytest.ini (what `make test`, CI and `colcon test` use): the run goes on.
    run = _pytest(site, tests, "-c", str(ROOT / "pytest.ini"), "--rootdir", str(tests))
    assert run.returncode == 0 and "1 passed" in run.stdout, run.stdout + run.stderr
