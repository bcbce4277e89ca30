import os
import pickle

import numpy as np
import pytest

from mask2iv_ros.data.bridge import (MASK_FILE, UnsafePickleError, find_trajectories, load_bridge_trajectory,
                                     read_language, read_mask_annotation, safe_pickle_load)
from mask2iv_ros.data.synthetic import render_episode


def test_generator_writes_the_raw_layout(raw_dataset):
    root, paths = raw_dataset
    assert find_trajectories(root) == sorted(paths, key=lambda p: [int(s) if s.isdigit() else s for s in
                                                                   __import__("re").split(r"(\d+)", str(p))])
    for traj in paths:
        rel = traj.relative_to(root).parts
        # <robot>/<env>/<task>/<nn>/<YYYY-MM-DD_HH-MM-SS>/raw/traj_group<g>/traj<k>: depth 5 to the date
        assert rel[0] == "synthetic" and rel[5] == "raw" and rel[6].startswith("traj_group")
        assert rel[7].startswith("traj") and len(rel[4]) == len("2024-01-01_00-00-00")
        dated = traj.parents[2]
        assert (dated / "config.json").exists() and (dated / "collection_metadata.json").exists()
        names = set(os.listdir(traj))
        assert {"images0", "obs_dict.pkl", "policy_out.pkl", "agent_data.pkl", "lang.txt", MASK_FILE} <= names
        images = sorted(os.listdir(traj / "images0"), key=lambda n: int(n[3:-4]))
        assert images == [f"im_{t}.jpg" for t in range(10)]
        obs = safe_pickle_load(traj / "obs_dict.pkl")
        assert obs["full_state"].shape == (10, 7) and len(obs["time_stamp"]) == 10
        acts = safe_pickle_load(traj / "policy_out.pkl")
        assert len(acts) == 9 and acts[0]["actions"].shape == (7,)  # one action per transition


def test_loader_reads_back_what_the_generator_wrote(tmp_path, small_cfg):
    from mask2iv_ros.data.synthetic import write_synthetic_dataset

    paths = write_synthetic_dataset(tmp_path, 3, seed=7, config=small_cfg, progress=False)
    for i, traj in enumerate(paths):
        expected, states, actions = render_episode(np.random.default_rng([7, i]), small_cfg)
        clip = load_bridge_trajectory(traj)
        assert clip.prompt == expected.prompt == read_language(traj)
        np.testing.assert_array_equal(clip.actor_masks, expected.actor_masks)
        np.testing.assert_array_equal(clip.object_masks, expected.object_masks)
        assert clip.frames.shape == expected.frames.shape
        # JPEG (quality 95) is lossy, most at the many edges of a 64x96 image: a few grey levels on
        # average, while another episode's frames are far off
        assert np.abs(clip.frames.astype(int) - expected.frames.astype(int)).mean() < 6.0
        other = render_episode(np.random.default_rng([7, i + 100]), small_cfg)[0].frames
        assert np.abs(clip.frames.astype(int) - other.astype(int)).mean() > 15.0
        np.testing.assert_allclose(clip.metadata["state"], states)
        np.testing.assert_allclose(clip.metadata["actions"], actions)
        assert clip.fps == pytest.approx(small_cfg.fps)
        assert clip.episode_id.startswith("synthetic/tabletop/") and clip.episode_id.endswith(f"traj{traj.name[4:]}")


def test_unannotated_trajectory_has_no_masks(raw_dataset, tmp_path):
    import shutil

    _, paths = raw_dataset
    traj = tmp_path / "2024-01-01_00-00-00" / "raw" / "traj_group0" / "traj0"
    shutil.copytree(paths[0], traj)
    (traj / MASK_FILE).unlink()
    clip = load_bridge_trajectory(traj)
    assert clip.actor_masks is None and clip.object_masks is None and read_mask_annotation(traj) is None


class _RunsShell:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_restricted_unpickler_refuses_code_and_does_not_run_it(tmp_path):
    marker = tmp_path / "pwned"
    payload = _RunsShell()
    payload.marker = marker
    evil = tmp_path / "obs_dict.pkl"
    evil.write_bytes(pickle.dumps({"full_state": payload}))
    with pytest.raises(UnsafePickleError) as err:
        safe_pickle_load(evil)
    msg = str(err.value)
    assert str(evil) in msg and "system" in msg and ("posix" in msg or "os" in msg)
    assert not marker.exists(), "the pickled command must not run"
    # the plain pickle module would have run it: the payload is real
    pickle.loads(evil.read_bytes())
    assert marker.exists()


def test_restricted_unpickler_refuses_other_globals(tmp_path):
    import collections

    bad = tmp_path / "policy_out.pkl"
    bad.write_bytes(pickle.dumps([collections.Counter(a=1)]))
    with pytest.raises(UnsafePickleError, match="collections.Counter"):
        safe_pickle_load(bad)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_restricted_unpickler_admits_numpy_and_builtins(tmp_path, protocol):
    data = {"full_state": np.arange(14, dtype=np.float32).reshape(2, 7), "t": [np.float64(0.5), 1, "a"],
            "ok": (True, None, b"x", {1.5}), "i": np.int64(3)}
    path = tmp_path / "obs_dict.pkl"
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    out = safe_pickle_load(path)
    np.testing.assert_array_equal(out["full_state"], data["full_state"])
    assert out["t"] == data["t"] and out["ok"] == data["ok"] and out["i"] == 3


def test_missing_root_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="root"):
        find_trajectories(tmp_path / "nope")
