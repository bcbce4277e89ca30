"""launch/imagine.launch.py: compiles everywhere; builds its description where launch_ros exists."""

import ast
import importlib.util
import py_compile
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAUNCH_FILE = REPO / "launch" / "imagine.launch.py"


def test_launch_file_compiles():
    py_compile.compile(str(LAUNCH_FILE), doraise=True)


def test_launch_file_names_the_installed_executable_and_config():
    tree = ast.parse(LAUNCH_FILE.read_text())
    keywords = {k.arg: k.value.value for node in ast.walk(tree) if isinstance(node, ast.Call)
                for k in node.keywords if isinstance(k.value, ast.Constant)}
    assert keywords["package"] == "mask2iv_ros" and keywords["executable"] == "imagine_node"
    # The executable exists under that name: the console entry point and the script CMake installs.
    assert re.search(r"[\"']imagine_node\s*=\s*mask2iv_ros\.ros\.node:main[\"']", (REPO / "setup.py").read_text())
    assert "install(PROGRAMS scripts/imagine_node" in (REPO / "CMakeLists.txt").read_text()
    source = LAUNCH_FILE.read_text()
    assert 'get_package_share_directory("mask2iv_ros"), "config")' in source
    assert '(config_dir, "imagine.yaml")' in source and (REPO / "config" / "imagine.yaml").is_file()


def test_generate_launch_description():
    if importlib.util.find_spec("launch_ros") is None:
        pytest.skip("launch_ros is not installed (not on PyPI); the launch file needs a full ROS 2 install")
    from launch import LaunchDescription

    spec = importlib.util.spec_from_file_location("imagine_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    assert isinstance(description, LaunchDescription)
    names = {getattr(entity, "name", None) for entity in description.entities}
    assert {"params_file", "model_path", "device", "use_sim_time", "fastdds_profile", "trajectory_encoding"} <= names


def test_launch_arguments_include_the_transport_settings():
    from mask2iv_ros.ros import launch_arguments

    names = launch_arguments.declared_names()
    assert {"fastdds_profile", "trajectory_encoding", "result_payload"} <= names
    assert launch_arguments.parameter_overrides({"trajectory_encoding": "colour"})["trajectory_encoding"] == "colour"
    assert "fastdds_profile" not in launch_arguments.parameter_overrides({"fastdds_profile": ""})  # not a node parameter


def _profile_environment(given, environment):
    from mask2iv_ros.ros.launch_arguments import fastdds_profile_environment

    return fastdds_profile_environment(given, environment, str(REPO / "config"))


def test_fastdds_profile_defaults_to_the_shipped_shared_memory_profile():
    shipped = str(REPO / "config" / "fastdds_shm.xml")
    assert _profile_environment({}, {}) == {"FASTDDS_DEFAULT_PROFILES_FILE": shipped}
    assert _profile_environment({}, {"FASTDDS_DEFAULT_PROFILES_FILE": ""}) == {"FASTDDS_DEFAULT_PROFILES_FILE": shipped}
    # CMake installs config/ (where the launch file looks for it: share/mask2iv_ros/config)
    assert "install(DIRECTORY launch config DESTINATION share/${PROJECT_NAME})" in (REPO / "CMakeLists.txt").read_text()


def test_fastdds_profile_keeps_a_users_profile_unless_given(tmp_path):
    mine = tmp_path / "my_profile.xml"
    mine.write_text("<dds/>")
    user = {"FASTDDS_DEFAULT_PROFILES_FILE": str(mine)}
    assert _profile_environment({}, user) == {}
    assert _profile_environment({"fastdds_profile": ""}, {}) == {}  # empty: leave the environment alone
    assert _profile_environment({"fastdds_profile": "fastdds_shm_only.xml"}, user) == {
        "FASTDDS_DEFAULT_PROFILES_FILE": str(REPO / "config" / "fastdds_shm_only.xml")}
    assert _profile_environment({"fastdds_profile": str(mine)}, {}) == {"FASTDDS_DEFAULT_PROFILES_FILE": str(mine)}


def test_fastdds_profile_that_does_not_exist_names_the_argument(tmp_path):
    with pytest.raises(ValueError, match=r"^launch argument fastdds_profile: expected a Fast DDS profile XML file "
                                         r"\(one of \['fastdds_shm.xml', 'fastdds_shm_only.xml'\]"):
        _profile_environment({"fastdds_profile": "fastdds_shm.xlm"}, {})
    with pytest.raises(ValueError, match="got '/nowhere/profile.xml'"):
        _profile_environment({"fastdds_profile": "/nowhere/profile.xml"}, {})


def test_launch_file_sets_the_profile_before_the_node():
    """Without launch_ros here: the launch file's source wires fastdds_profile_environment into
    SetEnvironmentVariable actions listed before the node."""
    source = LAUNCH_FILE.read_text()
    tree = ast.parse(source)
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module == "launch.actions"
                for alias in node.names}
    assert "SetEnvironmentVariable" in imported
    assert "launch_arguments.fastdds_profile_environment(given" in source
    lists = [node for node in ast.walk(tree) if isinstance(node, ast.List)
             and any(isinstance(e, ast.Name) and e.id == "node" for e in node.elts)]
    assert lists
    for actions in lists:
        names = [ast.unparse(e) for e in actions.elts]
        assert names[0] == "*set_environment" and names.index("*set_environment") < names.index("node")
