"""package.xml declares every ROS package that the node, the library and the launch file import
(exec_depend), and every one the tests import (test_depend): rosdep installs from these lists, so
a missing entry breaks `ros2 launch` on a fresh ROS 2 install (ament_index_python was missing)."""
from __future__ import annotations

import ast
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# ROS packages of Python code that are not on PyPI, so not found in this environment's ament index.
ROS_PACKAGES_NOT_ON_PYPI = {
    "launch", "launch_ros", "launch_testing", "launch_testing_ros", "launch_xml", "launch_yaml", "launch_pytest",
    "ros2cli", "message_filters", "rosbag2_py", "diagnostic_updater", "tf2_ros", "cv_bridge", "rosidl_runtime_py",
}
OWN_PACKAGE = "mask2iv_ros"


def _indexed_ros_packages() -> set[str]:
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p] + [sys.prefix]
    names = set()
    for prefix in prefixes:
        index = Path(prefix) / "share" / "ament_index" / "resource_index" / "packages"
        if index.is_dir():
            names.update(p.name for p in index.iterdir())
    return names


def _top_level_imports(paths) -> dict[str, str]:
    found: dict[str, str] = {}
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


@pytest.fixture(scope="module")
def package():
    catkin_pkg = pytest.importorskip("catkin_pkg.package", reason="catkin_pkg not installed")
    return catkin_pkg.parse_package(str(ROOT / "package.xml"))


@pytest.fixture(scope="module")
def ros_packages():
    indexed = _indexed_ros_packages()
    if "rclpy" not in indexed:
        pytest.skip("no ament index with the ROS wheels here (AMENT_PREFIX_PATH)")
    return indexed | ROS_PACKAGES_NOT_ON_PYPI


def test_runtime_imports_are_exec_depends(package, ros_packages):
    runtime = [ROOT / "scripts" / "imagine_node", *ROOT.glob("launch/*.py"), *ROOT.glob("mask2iv_ros/**/*.py")]
    imports = _top_level_imports(runtime)
    declared = {d.name for d in package.exec_depends}
    missing = {name: where for name, where in imports.items()
               if name in ros_packages and name != OWN_PACKAGE and name not in declared}
    assert not missing, f"add <exec_depend> to package.xml for: {missing}"
    # The launch file's own imports, named: the defect this test was written for.
    assert {"ament_index_python", "launch", "launch_ros", "lifecycle_msgs"} <= declared


def test_test_imports_are_declared(package, ros_packages):
    imports = _top_level_imports(p for p in (ROOT / "test").rglob("*.py") if "__pycache__" not in p.parts)
    declared = {d.name for d in [*package.exec_depends, *package.test_depends, *package.build_depends]}
    missing = {name: where for name, where in imports.items()
               if name in ros_packages and name != OWN_PACKAGE and name not in declared}
    assert not missing, f"add <test_depend> to package.xml for: {missing}"
