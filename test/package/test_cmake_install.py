"""The package configures, builds and installs with plain CMake + ament as colcon does it
(`MASK2IV_INSTALL_PYTHON=ON`, BUILD_TESTING left at its default, a fresh install prefix), and the
installed prefix alone serves the package: the hand-written modules, the generated msg/action and
the share/ files, imported in a subprocess whose environment names only that prefix.

This is the real build, not a reading of CMakeLists.txt: it failed while CMakeLists called
ament_python_install_package(mask2iv_ros) next to rosidl's own call for the same name, and while
BUILD_TESTING=ON needed ament_cmake_pytest that the bootstrap did not install.
"""
from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.prefix)
# What colcon hands to CMake for an ament_cmake package: the package's source tree.
SOURCE_ITEMS = ("package.xml", "CMakeLists.txt", "msg", "action", "launch", "config", "scripts", "mask2iv_ros", "test")
PY_DIR = f"lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"


def _cmake_env() -> dict[str, str]:
    # As after sourcing the underlay (here: the venv holding the ROS wheels).
    env = dict(os.environ)
    env["AMENT_PREFIX_PATH"] = str(VENV)
    env["CMAKE_PREFIX_PATH"] = os.pathsep.join([str(VENV), site.getsitepackages()[0]])
    return env


def _run(cmd: list[str], log: Path, **kwargs) -> None:
    with log.open("w") as out:
        code = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=_cmake_env(), **kwargs).returncode
    if code != 0:
        tail = "\n".join(log.read_text().splitlines()[-40:])
        raise AssertionError(f"{' '.join(cmd[:3])} ... failed (exit {code}):\n{tail}")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(build dir, install prefix) of one CMake configure + build + install of the package."""
    if shutil.which("cmake") is None:
        pytest.skip("cmake is not installed")
    if not (VENV / "share" / "ament_cmake" / "cmake").is_dir():
        pytest.skip("the ament CMake wheels are not installed in this environment (make bootstrap)")
    work = tmp_path_factory.mktemp("cmake_install")
    # A copy of the package: CMake refuses exported include dirs inside the source dir, and the
    # venv (an include dir of the ROS wheels) lives inside this repository.
    source = work / "src" / "mask2iv_ros"
    source.mkdir(parents=True)
    for item in SOURCE_ITEMS:
        path = ROOT / item
        if path.is_dir():
            shutil.copytree(path, source / item, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, source / item)
    build, prefix = work / "build", work / "install"
    _run(["cmake", "-S", str(source), "-B", str(build), f"-DCMAKE_INSTALL_PREFIX={prefix}",
          f"-DPython3_EXECUTABLE={sys.executable}", "-DMASK2IV_INSTALL_PYTHON=ON"], work / "configure.log")
    _run(["cmake", "--build", str(build), "-j2"], work / "build.log")
    _run(["cmake", "--install", str(build)], work / "install.log")
    return build, prefix


def test_configure_keeps_colcons_default_of_build_testing_and_registers_the_tests(installed):
    build, _ = installed
    cache = (build / "CMakeCache.txt").read_text()
    assert "BUILD_TESTING:BOOL=ON" in cache
    listed = subprocess.run(["ctest", "-N"], cwd=build, capture_output=True, text=True, check=True).stdout
    assert "mask2iv_ros_tests" in listed, listed  # ament_add_pytest_test: what `colcon test` runs


def test_prefix_has_the_ament_layout_launch_needs(installed):
    _, prefix = installed
    assert (prefix / "share/ament_index/resource_index/packages/mask2iv_ros").is_file()
    assert (prefix / "share/mask2iv_ros/package.xml").is_file()
    assert (prefix / "share/mask2iv_ros/launch/imagine.launch.py").is_file()
    assert (prefix / "share/mask2iv_ros/config/imagine.yaml").is_file()
    node = prefix / "lib/mask2iv_ros/imagine_node"
    assert node.is_file() and os.access(node, os.X_OK)
    package_dir = prefix / PY_DIR / "mask2iv_ros"
    # The hand-written __init__ (not rosidl's empty one) and the embedded model's files.
    assert "__version__" in (package_dir / "__init__.py").read_text()
    assert (package_dir / "assets").is_dir() and any((package_dir / "assets").rglob("*.safetensors"))
    assert (package_dir / "msg").is_dir() and (package_dir / "action").is_dir()


PROBE = textwrap.dedent("""
    import json, sys
    import rclpy
    from rclpy.action import ActionClient
    import mask2iv_ros, mask2iv_ros.msg, mask2iv_ros.action
    import mask2iv_ros.ros.parameters as parameters
    from mask2iv_ros.msg import ImaginedRollout, MaskTrajectory
    from mask2iv_ros.action import Imagine
    from ament_index_python.packages import get_package_share_directory

    rclpy.init()
    node = rclpy.create_node("installed_prefix_probe")
    # Creating a publisher / action client loads the generated C typesupport libraries.
    node.create_publisher(MaskTrajectory, "probe_trajectory", 1).publish(MaskTrajectory(fps=8.0))
    node.create_publisher(ImaginedRollout, "probe_rollout", 1)
    client = ActionClient(node, Imagine, "probe_imagine")
    client.destroy()
    node.destroy_node()
    rclpy.shutdown()
    json.dump({
        "package": mask2iv_ros.__file__,
        "path0": mask2iv_ros.__path__[0],
        "msg": mask2iv_ros.msg.__file__,
        "action": mask2iv_ros.action.__file__,
        "parameters": parameters.__file__,
        "defaults": len(parameters.defaults()),
        "share": get_package_share_directory("mask2iv_ros"),
        "goal_fields": sorted(Imagine.Goal.get_fields_and_field_types()),
    }, sys.stdout)
""")


def test_installed_prefix_serves_package_msg_action_and_share_files(installed):
    _, prefix = installed
    site_dir = prefix / PY_DIR
    # A fresh environment as a sourced colcon workspace gives it, not this test process's.
    env = {
        "PATH": os.pathsep.join([str(prefix / "bin"), str(Path(sys.executable).parent), "/usr/bin", "/bin"]),
        "HOME": os.environ.get("HOME", "/tmp"),
        "PYTHONPATH": str(site_dir),
        "AMENT_PREFIX_PATH": os.pathsep.join([str(prefix), str(VENV)]),
        "LD_LIBRARY_PATH": str(prefix / "lib"),
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "ROS_DOMAIN_ID": os.environ.get("ROS_DOMAIN_ID", "1"),
        "ROS_LOG_DIR": str(prefix.parent / "ros_log"),
    }
    run = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120,
                         cwd=prefix.parent)
    assert run.returncode == 0, run.stderr[-3000:]
    found = json.loads(run.stdout.strip().splitlines()[-1])
    # Everything comes from the prefix, not from this repository or the venv's bootstrap install.
    for key in ("package", "path0", "msg", "action", "parameters"):
        assert Path(found[key]).resolve().is_relative_to(site_dir.resolve()), f"{key}: {found[key]}"
    assert Path(found["share"]).resolve() == (prefix / "share" / "mask2iv_ros").resolve()
    assert found["defaults"] > 10 and {"image", "object_mask", "prompt", "mode"} <= set(found["goal_fields"])
