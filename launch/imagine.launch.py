"""Start imagine_node (a lifecycle node) with config/imagine.yaml, then configure and activate it.

    ros2 launch mask2iv_ros imagine.launch.py mode:=position model_path:=/path/to/checkpoint device:=cuda
    ros2 launch mask2iv_ros imagine.launch.py params_file:=my_params.yaml use_sim_time:=true
    ros2 launch mask2iv_ros imagine.launch.py auto_activate:=false   # then: ros2 lifecycle set /imagine_node configure
    ros2 launch mask2iv_ros imagine.launch.py --show-args            # every argument with its description
    ros2 launch mask2iv_ros imagine.launch.py fastdds_profile:=          # keep the environment's Fast DDS profile

Every node parameter (mask2iv_ros/ros/parameters.py) is a launch argument of the same name; one
that is given overrides the parameters file, the others keep the file's values. An argument this
file does not declare is refused with the nearest known name (a typo such as `mdoe:=position` would
otherwise be ignored); when an including launch file's own arguments are in scope, pass
`allow_unknown_arguments:=true`. The launch drives the lifecycle (the node gets autostart:=false):
with auto_activate:=true (default) it requests `configure` once the node runs and `activate` once
configuration succeeded, as the ROS 2 lifecycle demos do.

Transport: the node gets FASTDDS_DEFAULT_PROFILES_FILE = share/mask2iv_ros/config/fastdds_shm.xml
(a large shared-memory segment: a rollout crosses loopback as one message) unless the environment
already names a profile or `fastdds_profile` says otherwise (a file of config/, a path, or empty =
leave the environment alone); see launch_arguments.fastdds_profile_environment.

Needs a ROS 2 install with launch and launch_ros (not on PyPI). Without them, run
`imagine_node --ros-args --params-file config/imagine.yaml -p mode:=position` (it then configures and
activates itself).
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import (DeclareLaunchArgument, EmitEvent, LogInfo, OpaqueFunction, RegisterEventHandler,
                            SetEnvironmentVariable)
from launch.events import Shutdown, matches_action
from launch_ros.actions import LifecycleNode
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.parameter_descriptions import ParameterValue
from lifecycle_msgs.msg import Transition

from mask2iv_ros.ros import launch_arguments


def _lifecycle_transition(node: LifecycleNode, transition_id: int) -> EmitEvent:
    return EmitEvent(event=ChangeState(lifecycle_node_matcher=matches_action(node), transition_id=transition_id))


def _shut_down_launch(context) -> list:
    # Not when launch is already shutting down (Ctrl-C): a second Shutdown event makes launch_ros
    # stop its ROS adapter twice ("Cannot shutdown a ROS adapter that is not running").
    return [] if context.is_shutdown else [EmitEvent(event=Shutdown(reason="imagine_node exited"))]


def _imagine_node(context, given: dict) -> list:
    configurations = context.launch_configurations
    # A ValueError here (unknown argument, a value of the wrong type) stops the launch; launch
    # prints its message, which names the argument.
    launch_arguments.check_known(given, launch_arguments.option_value("allow_unknown_arguments", configurations))
    overrides = launch_arguments.parameter_overrides(given)
    auto_activate = launch_arguments.option_value("auto_activate", configurations)
    config_dir = os.path.join(get_package_share_directory("mask2iv_ros"), "config")
    params_file = configurations.get("params_file") or os.path.join(config_dir, "imagine.yaml")
    # Before the node starts, so its process inherits it.
    environment = launch_arguments.fastdds_profile_environment(given, getattr(context, "environment", os.environ),
                                                               config_dir)
    set_environment = [SetEnvironmentVariable(name, value) for name, value in environment.items()]
    node = LifecycleNode(
        package="mask2iv_ros",
        executable="imagine_node",
        name="imagine_node",
        namespace=configurations.get("namespace", ""),
        output="screen",
        emulate_tty=True,
        # The typed values keep launch_ros from re-reading strings as YAML (model_path:=123).
        parameters=[params_file, {name: ParameterValue(value, value_type=type(value)) for name, value in overrides.items()}],
        arguments=["--ros-args", "--log-level", configurations.get("log_level", "info")],
        # The node exits on a fatal start-up error (exit code 2, one FATAL line): end the launch too.
        on_exit=[OpaqueFunction(function=_shut_down_launch)],
    )
    actions = [*set_environment, node]
    if auto_activate:
        actions = [
            *set_environment,
            RegisterEventHandler(OnStateTransition(
                target_lifecycle_node=node, start_state="configuring", goal_state="inactive",
                entities=[LogInfo(msg="imagine_node configured (model loaded): activating"),
                          _lifecycle_transition(node, Transition.TRANSITION_ACTIVATE)],
            )),
            node,
            _lifecycle_transition(node, Transition.TRANSITION_CONFIGURE),
        ]
    return actions


def generate_launch_description() -> LaunchDescription:
    given: dict = {}

    def record_given_arguments(context) -> list:
        # Runs before the DeclareLaunchArgument actions set their defaults, so the configurations
        # present now are exactly the arguments given (by `ros2 launch` or an including file).
        given.update(context.launch_configurations)
        return []

    return LaunchDescription([
        OpaqueFunction(function=record_given_arguments),
        *(DeclareLaunchArgument(a.name, default_value=a.default, description=a.description)
          for a in launch_arguments.all_arguments()),
        OpaqueFunction(function=lambda context: _imagine_node(context, given)),
    ])
