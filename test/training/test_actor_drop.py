"""stage1.actor_condition_drop_prob: stage 1 trained on the first-frame condition that a request
without an actor mask gives the pipeline."""

import numpy as np
import pytest
import torch

from mask2iv_ros.masks import encode_masks
from mask2iv_ros.pipeline.conditioning import pt_condition, tt_condition
from mask2iv_ros.pipeline.resize import mask_to_model_grid
from mask2iv_ros.training.actor_drop import drop_first_frame_actor
from mask2iv_ros.training.config import ConfigError
from mask2iv_ros.training.train import Trainer


def _unit(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb).permute(2, 0, 1).float() / 127.5 - 1.0


def _pipeline_first_frame(object_mask: np.ndarray, actor_mask) -> torch.Tensor:
    """What Mask2IVPipeline.__call__ colour-codes at the model size (it is the model size here)."""
    h, w = object_mask.shape
    model_object = mask_to_model_grid("object_mask", object_mask, h, w)
    return _unit(encode_masks(model_object, actor_mask))


def _latent(trainer, images: torch.Tensor) -> torch.Tensor:
    return trainer.stage_inputs.vae.encode(images.unsqueeze(2)).float()


@pytest.mark.parametrize("name", ["tiny_stage1_text", "tiny_stage1_position"])
def test_dropped_rows_see_the_no_actor_mask_condition(tiny_config, name):
    dropped = Trainer(tiny_config(name, "stage1.actor_condition_drop_prob=1.0"),
                      show_progress=False)
    kept = Trainer(tiny_config(name, output="kept"), show_progress=False)
    batch = next(dropped._batches())
    objects = batch["object_masks"][:, 0].numpy()
    actors = batch["actor_masks"][:, 0].numpy()
    assert actors.any(axis=(1, 2)).all()  # the arm is in every first frame: dropping matters
    without = torch.stack([_pipeline_first_frame(o, None) for o in objects])
    with_actor = torch.stack([_pipeline_first_frame(o, a) for o, a in zip(objects, actors)])
    # the dataset's condition is the pipeline's with an actor mask
    torch.testing.assert_close(batch["object_mask_rgb"], with_actor)

    image = _latent(dropped, batch["first_frame"])
    frames = batch["mask_video"].shape[2]
    for trainer, first in ((dropped, without), (kept, with_actor)):
        inputs = trainer.stage_inputs(batch, np.random.default_rng(0), torch.Generator())
        if name == "tiny_stage1_text":
            expected = tt_condition(image, _latent(trainer, first), frames)
        else:
            placement = _latent(trainer, batch["placement_mask_rgb"])
            expected = pt_condition(image, _latent(trainer, first), placement, frames)
            dropped_placement = np.random.default_rng(0).random(len(objects)) < 0.1
            expected[dropped_placement, :4, -1] = 0  # classifier-free guidance drop
        torch.testing.assert_close(inputs.condition, expected, atol=1e-5, rtol=1e-5)
    a = dropped.stage_inputs(batch, np.random.default_rng(0), torch.Generator())
    b = kept.stage_inputs(batch, np.random.default_rng(0), torch.Generator())
    assert not torch.allclose(a.condition[:, :4, 0], b.condition[:, :4, 0])
    torch.testing.assert_close(a.latents, b.latents)  # the target still shows the actor


def test_drop_only_the_drawn_rows_and_train(tiny_config):
    trainer = Trainer(tiny_config("tiny_stage1_text", "stage1.actor_condition_drop_prob=0.5"),
                      show_progress=False)
    batch = next(trainer._batches())
    result = drop_first_frame_actor(batch["object_mask_rgb"], batch["object_masks"],
                                    np.array([True, False]))
    torch.testing.assert_close(result[1], batch["object_mask_rgb"][1])
    torch.testing.assert_close(result[0],
                               _pipeline_first_frame(batch["object_masks"][0, 0].numpy(), None))
    with pytest.raises(ValueError, match="drop: expected a bool array of shape"):
        drop_first_frame_actor(batch["object_mask_rgb"], batch["object_masks"], np.ones(3, bool))
    losses = trainer.train()
    assert len(losses) == 2 and all(np.isfinite(losses))


def test_drop_probability_is_checked(tiny_config):
    with pytest.raises(ConfigError, match="stage1.actor_condition_drop_prob: expected a "
                                          "probability in \\[0, 1\\], got 1.5"):
        tiny_config("tiny_stage1_text", "stage1.actor_condition_drop_prob=1.5")
