"""The package builds both ways: ament (package.xml + CMake/rosidl) and pip (setup.py)."""
import ast
import importlib
import py_compile
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_package_xml_is_valid_for_catkin_pkg():
    catkin_pkg = pytest.importorskip("catkin_pkg.package", reason="catkin_pkg not installed")
    package = catkin_pkg.parse_package(str(ROOT / "package.xml"))
    package.validate()
    assert package.name == "mask2iv_ros"
    assert "rosidl_interface_packages" in [g.name for g in package.member_of_groups]


def test_cmake_generates_every_interface_file():
    cmake = (ROOT / "CMakeLists.txt").read_text()
    interface_files = sorted(p.relative_to(ROOT).as_posix() for p in [*ROOT.glob("msg/*.msg"), *ROOT.glob("action/*.action")])
    assert interface_files, "no interface definitions found"
    for path in interface_files:
        assert f'"{path}"' in cmake, f"{path} is not in rosidl_generate_interfaces"


def _console_scripts():
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == "console_scripts":
                    return [ast.literal_eval(v) for v in value.elts]
    raise AssertionError("setup.py declares no console_scripts")


@pytest.mark.parametrize("spec", _console_scripts())
def test_console_entry_points_resolve(spec):
    name, target = (s.strip() for s in spec.split("="))
    module_name, func_name = target.split(":")
    module = importlib.import_module(module_name)
    assert callable(getattr(module, func_name)), f"{name}: {target} is not callable"


def test_params_file_is_a_ros_parameters_file():
    params = yaml.safe_load((ROOT / "config" / "imagine.yaml").read_text())
    assert isinstance(params, dict) and params, "config/imagine.yaml is empty"
    for node_name, section in params.items():
        assert set(section) == {"ros__parameters"}, f"{node_name}: expected only a ros__parameters section"
        assert section["ros__parameters"], f"{node_name}: no parameters"


def test_launch_file_compiles():
    py_compile.compile(str(ROOT / "launch" / "imagine.launch.py"), doraise=True)
    source = (ROOT / "launch" / "imagine.launch.py").read_text()
    assert "generate_launch_description" in source
    assert re.search(r"executable\s*=\s*['\"]imagine_node['\"]", source)
