"""mask2iv_ros.demo_outputs.requested_steps: what `make demo` asks the node for."""
import json
from pathlib import Path

from mask2iv_ros.demo_outputs import requested_steps


def _folder(tmp_path: Path, sampling: dict | None, card_steps: int | None = None) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    config = {} if sampling is None else {"sampling": sampling}
    (folder / "model_index.json").write_text(json.dumps({"config": config}))
    if card_steps is not None:
        (folder / "model_card.json").write_text(json.dumps({"demo_num_inference_steps": card_steps}))
    return folder


def test_a_recorded_sampling_is_left_to_the_checkpoint(tmp_path):
    # 0 = the node's "checkpoint default": its video stage keeps its own steps
    folder = _folder(tmp_path, {"num_inference_steps": 3, "video_num_inference_steps": 2})
    assert requested_steps(folder) == (0, "3 denoising steps for the mask trajectory, 2 for the video")


def test_one_recorded_step_count_serves_both_stages(tmp_path):
    assert requested_steps(_folder(tmp_path, {"num_inference_steps": 2})) == \
        (0, "2 denoising steps per stage")


def test_given_steps_are_sent_for_both_stages(tmp_path):
    folder = _folder(tmp_path, {"num_inference_steps": 3, "video_num_inference_steps": 2})
    assert requested_steps(folder, 5) == (5, "5 denoising steps per stage")


def test_a_folder_without_recorded_sampling_gets_the_card_steps_explicitly(tmp_path):
    # folders from before config.sampling: the model card's demo steps, not the legacy 50
    assert requested_steps(_folder(tmp_path, None, card_steps=25)) == (25, "25 denoising steps per stage")
