"""benchmarks/bench_transport.py: the payload variants carry the rollout exactly, and a tiny run
over loopback (two processes) delivers every rollout and prints the table."""

from pathlib import Path

import numpy as np
import pytest
from benchmark_scripts import load_benchmark  # noqa: E402



@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_transport")


@pytest.fixture(scope="module")
def content(bench):
    return bench.rollout_content(frames=3, height=32, width=48)


def test_payload_variants_round_trip(bench, content):
    mono8 = [np.where(m, 255, 0).astype(np.uint8) for m in (*content["actor"], *content["object"])]
    expected = {
        "node": mono8,  # the node's default trajectory_encoding 'masks'
        "node-rollout": list(content["video"]),  # the trajectory's images are on its own topic
        "current": [*content["colour"], *mono8, *content["video"]],
        "colour": list(content["colour"]),
        "mono8": mono8,
        "video": list(content["video"]),
        "mono8+video": [*mono8, *content["video"]],
        "colour+video": [*content["colour"], *content["video"]],
        "png": mono8,
    }
    assert set(expected) == set(bench.PAYLOADS)
    for payload, arrays in expected.items():
        messages = bench.build_messages(payload, content)
        assert all(isinstance(m, bench.message_type(payload)) for m in messages)
        assert len(messages) == (6 if payload == "png" else 1)
        decoded = bench.decode_messages(messages)
        assert len(decoded) == len(arrays), payload
        for got, want in zip(decoded, arrays):
            assert np.array_equal(got, want), payload


def test_profiles_are_set_per_transport(bench):
    base = {"ROS_DOMAIN_ID": "7", "FASTDDS_DEFAULT_PROFILES_FILE": "/elsewhere.xml"}
    assert "FASTDDS_DEFAULT_PROFILES_FILE" not in bench.transport_env("default", base)
    shm = bench.transport_env("shm", base)
    assert shm["FASTDDS_DEFAULT_PROFILES_FILE"] == shm["FASTRTPS_DEFAULT_PROFILES_FILE"]
    assert Path(shm["FASTDDS_DEFAULT_PROFILES_FILE"]).read_text().count("<segment_size>") == 1
    assert bench.transport_env("large-data", base)["FASTDDS_BUILTIN_TRANSPORTS"] == "LARGE_DATA"
    assert bench.transport_env("shm-only", base)["ROS_DOMAIN_ID"] == "7"


def test_node_payloads_are_the_nodes_messages(bench, content):
    (trajectory,) = bench.build_messages("node", content)
    assert not trajectory.frames and len(trajectory.object_masks) == 3 and trajectory.fps == 8.0
    (rollout,) = bench.build_messages("node-rollout", content)
    assert not rollout.mask_trajectory.object_masks and len(rollout.video_frames) == 3
    assert rollout.mask_trajectory.imagined_region.width == 48 and rollout.num_frames == 3


def test_tiny_loopback_run_delivers_every_rollout(bench, capsys):
    code = bench.main(["--payloads", "node", "png", "--transports", "shm", "--frames", "2",
                       "--height", "32", "--width", "48", "--count", "2", "--warmup", "1",
                       "--timeout", "30"])
    assert code == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| shm |")]
    assert [row.split(" | ")[1] for row in rows] == ["node", "png"]
    assert all(row.rstrip(" |").endswith("2/2") for row in rows)
