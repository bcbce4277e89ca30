"""Loading the served model: a saved checkpoint folder, the tiny test pipeline, a missing folder."""

import pytest

from mask2iv_ros.ros.model_loading import ModelNotFoundError, load_pipeline, model_id_of


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(ModelNotFoundError, match=r"^model_path: no Mask2IV checkpoint at '.*nothing_here'.*tiny-random"):
        load_pipeline(str(tmp_path / "nothing_here"), "cpu")


def test_saved_checkpoint_loads_with_a_content_model_id(tmp_path, tiny_pipeline):
    folder = tmp_path / "my_model"
    tiny_pipeline.save_pretrained(folder)
    pipeline, model_id = load_pipeline(str(folder), "cpu")
    assert model_id.startswith("my_model@") and len(model_id.split("@")[1]) == 12
    assert model_id == model_id_of(folder) and pipeline.modes == tiny_pipeline.modes
    (folder / "model_index.json").write_text((folder / "model_index.json").read_text().replace("4.0", "5.0"))
    assert model_id_of(folder) != model_id  # another configuration, another id


def test_tiny_random_is_for_tests():
    pipeline, model_id = load_pipeline("tiny-random", "cpu")
    assert model_id.startswith("tiny-random:") and set(pipeline.modes) == {"text", "position"}


def test_embedded_default_is_served_by_name():
    from mask2iv_ros.ros.parameters import defaults

    assert defaults()["model_path"] == "embedded"  # a bare start serves the packaged model
    pipeline, model_id = load_pipeline("embedded", "cpu")
    assert model_id.startswith("default_model@")
    assert set(pipeline.modes) == {"text", "position"}
    assert pipeline.resolution == (64, 64)


def test_safetensors_header_check_finds_truncated_and_garbage_files(tmp_path):
    import numpy as np
    from safetensors.numpy import save_file

    from mask2iv_ros.ros.model_loading import StartupError, check_safetensors_file

    path = tmp_path / "weights.safetensors"
    save_file({"w": np.zeros((64, 64), np.float32)}, str(path))
    check_safetensors_file(path)  # complete: no error
    complete = path.read_bytes()
    for broken, why in [(complete[:-100], "truncated"), (complete[:5], "shorter than the 8-byte header length"),
                        (b"\xff" * 64, "does not fit")]:
        path.write_bytes(broken)
        with pytest.raises(StartupError, match=f"^model_path: '{path}' is not a complete safetensors file .*{why}"):
            check_safetensors_file(path)


def test_cuda_device_index_beyond_the_visible_devices_is_refused():
    import torch

    from mask2iv_ros.ros.model_loading import StartupError, check_device

    check_device("cpu")
    with pytest.raises(StartupError, match=r"^device: 'cuda:7' requested but"):
        check_device("cuda:7") if torch.cuda.device_count() < 8 else pytest.skip("8+ GPUs")
