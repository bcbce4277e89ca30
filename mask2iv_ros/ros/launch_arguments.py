"""The launch arguments of launch/imagine.launch.py, generated from the node's parameters.

Every field of `ImagineParameters` (mask2iv_ros/ros/parameters.py, the one source of defaults) is
a launch argument of the same name, so a new node parameter is a launch argument with no edit
here. A node-parameter argument overrides the parameters file only when it is given; the others
keep the file's values. Given values are converted to the parameter's type here (a clear error
naming the argument otherwise), so `model_path:=123` stays a string and `max_rate_hz:=2` a float.

Pure Python: nothing here imports launch or rclpy, so CI (which has neither launch nor launch_ros)
tests it; the launch file only wires these into launch actions.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from mask2iv_ros.ros.parameters import ImagineParameters

# Fast DDS reads its profile (transports, shared-memory segment size) from this file.
FASTDDS_PROFILE_VARIABLE = "FASTDDS_DEFAULT_PROFILES_FILE"
DEFAULT_FASTDDS_PROFILE = "fastdds_shm.xml"
# Parameters launch sets itself: the launch file drives the lifecycle transitions, so the node
# must not configure+activate on its own (`autostart` is for plain `imagine_node` runs).
LAUNCH_MANAGED_PARAMETERS = {"autostart": False}
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


@dataclass(frozen=True)
class LaunchArgument:
    name: str
    default: str
    description: str


# Arguments of the launch file itself (not ImagineParameters fields).
LAUNCH_OPTIONS = (
    LaunchArgument("params_file", "", "Node parameters (YAML); empty = share/mask2iv_ros/config/imagine.yaml."),
    LaunchArgument("namespace", "", "Namespace of the node, its topics and its action."),
    LaunchArgument("log_level", "info", "ROS log level of the node (debug, info, warn, error, fatal)."),
    LaunchArgument("use_sim_time", "false",
                   "Use /clock (bag replay). Overrides the parameters file only when given."),
    LaunchArgument("auto_activate", "true",
                   "Configure (load the model) and activate (serve topics and the action) the lifecycle node "
                   "once it runs; false = leave it unconfigured for `ros2 lifecycle set`."),
    LaunchArgument("fastdds_profile", DEFAULT_FASTDDS_PROFILE,
                   f"Fast DDS profile of the node ({FASTDDS_PROFILE_VARIABLE}): a file in share/mask2iv_ros/config/ "
                   "(fastdds_shm.xml: 128 MiB shared-memory segment + UDPv4, so a rollout crosses loopback as one "
                   "SHM message; fastdds_shm_only.xml: same host only) or a path; empty = leave the environment "
                   f"alone. Not given: {DEFAULT_FASTDDS_PROFILE}, unless {FASTDDS_PROFILE_VARIABLE} is already set "
                   "(a user's own profile is kept). Planners get the same speed-up with the same profile."),
    LaunchArgument("allow_unknown_arguments", "false",
                   "Accept launch arguments this file does not declare (true when an including launch "
                   "file's own arguments are in scope); false = refuse them, naming the nearest known one."),
)
_OPTION_TYPES = {"use_sim_time": bool, "auto_activate": bool, "allow_unknown_arguments": bool}


def _parameter_fields() -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(ImagineParameters) if f.name not in LAUNCH_MANAGED_PARAMETERS]


def _describe_default(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def node_parameter_arguments() -> list[LaunchArgument]:
    """One argument per node parameter (in declaration order), with the built-in default shown.

    The declared default is empty: "not given" means "the parameters file's value".
    """
    return [
        LaunchArgument(
            f.name, "",
            f"{f.metadata.get('description', '')} Not given: the parameters file's value "
            f"(built-in default: {_describe_default(f.default)!r}).".strip(),
        )
        for f in _parameter_fields()
    ]


def all_arguments() -> list[LaunchArgument]:
    return [*LAUNCH_OPTIONS, *node_parameter_arguments()]


def declared_names() -> set[str]:
    return {argument.name for argument in all_arguments()}


def parse_value(name: str, text: str, kind: type) -> Any:
    """`text` (a launch argument) as a `kind` value; ValueError naming the argument if it is not one."""
    if kind is bool:
        lowered = text.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError(f"launch argument {name}: expected true or false, got {text!r}")
    if kind is int:
        try:
            return int(text.strip())
        except ValueError:
            raise ValueError(f"launch argument {name}: expected an integer, got {text!r}") from None
    if kind is float:
        try:
            return float(text.strip())
        except ValueError:
            raise ValueError(f"launch argument {name}: expected a number, got {text!r}") from None
    return text


def option_value(name: str, configurations: Mapping[str, str]) -> Any:
    """A launch option's value (its default when not given), typed."""
    default = next(a.default for a in LAUNCH_OPTIONS if a.name == name)
    return parse_value(name, configurations.get(name, default), _OPTION_TYPES.get(name, str))


def parameter_overrides(given: Mapping[str, str]) -> dict[str, Any]:
    """Node parameters from the given launch arguments (only those given), typed like their defaults,
    plus the parameters launch manages itself (and use_sim_time when given)."""
    overrides: dict[str, Any] = {}
    for f in _parameter_fields():
        if f.name in given:
            overrides[f.name] = parse_value(f.name, given[f.name], type(f.default))
    if "use_sim_time" in given:
        overrides["use_sim_time"] = parse_value("use_sim_time", given["use_sim_time"], bool)
    overrides.update(LAUNCH_MANAGED_PARAMETERS)
    return overrides


def check_known(given: Iterable[str], allow_unknown: bool = False) -> list[str]:
    """The given names this launch file does not declare; ValueError listing them unless allowed."""
    known = declared_names()
    unknown = sorted(set(given) - known)
    if unknown and not allow_unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
            hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        managed = [n for n in unknown if n in LAUNCH_MANAGED_PARAMETERS]
        note = (f" {managed} is set by the launch file itself (use auto_activate)." if managed else "")
        raise ValueError(
            f"unknown launch argument(s) {', '.join(hints)} for mask2iv_ros imagine.launch.py.{note} "
            "The known ones: `ros2 launch mask2iv_ros imagine.launch.py --show-args`; set "
            "allow_unknown_arguments:=true if another launch file's arguments are in scope."
        )
    return unknown


def fastdds_profile_environment(given: Mapping[str, str], environment: Mapping[str, str], config_dir: str) -> dict[str, str]:
    """The environment variables the launch sets for the node's Fast DDS profile ({} = none).

    `given`: the launch arguments given; `environment`: the launch's environment; `config_dir`: the
    package's installed config/ folder. Not given: the shipped profile unless the environment
    already names one; given empty: nothing; given: that file (a name in config_dir, or a path).
    ValueError naming the argument when the file does not exist.
    """
    if "fastdds_profile" not in given:
        if environment.get(FASTDDS_PROFILE_VARIABLE):
            return {}
        value = DEFAULT_FASTDDS_PROFILE
    else:
        value = given["fastdds_profile"].strip()
    if not value:
        return {}
    path = value if os.sep in value else os.path.join(config_dir, value)
    if not os.path.isfile(path):
        shipped = sorted(n for n in os.listdir(config_dir) if n.startswith("fastdds")) if os.path.isdir(config_dir) else []
        raise ValueError(f"launch argument fastdds_profile: expected a Fast DDS profile XML file (one of {shipped} "
                         f"in {config_dir}, or a path; empty = leave {FASTDDS_PROFILE_VARIABLE} alone), got {value!r}")
    return {FASTDDS_PROFILE_VARIABLE: os.path.abspath(path)}
