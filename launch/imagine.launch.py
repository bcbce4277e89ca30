"""Start imagine_node with config/imagine.yaml; model_path, device, use_sim_time as arguments.

    ros2 launch mask2iv_ros imagine.launch.py model_path:=/path/to/checkpoint device:=cuda
    ros2 launch mask2iv_ros imagine.launch.py params_file:=my_params.yaml use_sim_time:=true

model_path and device, when given, override the parameters file. Needs a real ROS 2 install (launch, launch_ros);
the PyPI-wheel set-up of this repository has neither: there, run `imagine_node --ros-args
--params-file config/imagine.yaml -p model_path:=...` instead.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def _imagine_node(context, *_args, **_kwargs) -> list:
    # Only arguments actually given override the parameters file, so the file (which mirrors the
    # node's own defaults) stays the one place defaults are written.
    overrides = {
        name: LaunchConfiguration(name).perform(context)
        for name in ("model_path", "device")
        if LaunchConfiguration(name).perform(context)
    }
    overrides["use_sim_time"] = LaunchConfiguration("use_sim_time").perform(context).lower() in ("true", "1")
    return [
        Node(
            package="mask2iv_ros",
            executable="imagine_node",
            name="imagine_node",
            namespace=LaunchConfiguration("namespace"),
            output="screen",
            emulate_tty=True,
            parameters=[LaunchConfiguration("params_file"), overrides],
            arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level")],
        )
    ]


def generate_launch_description() -> LaunchDescription:
    default_params = os.path.join(get_package_share_directory("mask2iv_ros"), "config", "imagine.yaml")
    return LaunchDescription(
        [
            DeclareLaunchArgument("params_file", default_value=default_params, description="node parameters (YAML)"),
            DeclareLaunchArgument(
                "model_path", default_value="",
                description="Mask2IV checkpoint folder; empty = the parameters file's "
                "('tiny-random' = tiny random pipeline, tests only)",
            ),
            DeclareLaunchArgument("device", default_value="", description="cpu, cuda or cuda:N; empty = the parameters file's"),
            DeclareLaunchArgument("use_sim_time", default_value="false", description="use /clock (bag replay)"),
            DeclareLaunchArgument("namespace", default_value="", description="namespace of the node and its topics"),
            DeclareLaunchArgument("log_level", default_value="info", description="ROS log level"),
            OpaqueFunction(function=_imagine_node),
        ]
    )
