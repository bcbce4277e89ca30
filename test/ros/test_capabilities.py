"""capabilities_of: what the node reads from a pipeline once, at configure."""
from mask2iv_ros.ros.capabilities import capabilities_of


def test_capabilities_of_the_tiny_pipeline(tiny_pipeline):
    caps = capabilities_of(tiny_pipeline)
    sampling = tiny_pipeline.config.sampling
    assert caps.default_num_inference_steps == sampling.num_inference_steps
    assert caps.default_guidance_scale == sampling.guidance_scale
    assert caps.has_video_model and set(caps.modes) == set(tiny_pipeline.modes)
    # Mask2IVPipeline hands the trajectory over when stage 1 ends
    assert caps.accepts_trajectory_callback


def test_a_stand_in_without_the_trajectory_callback():
    def plain(image, object_mask, *, prompt=None, num_inference_steps=7, guidance_scale=2.0):
        raise AssertionError("capabilities_of must not call the pipeline")

    caps = capabilities_of(plain)
    assert not caps.accepts_trajectory_callback
    # without a recorded config: the call's own defaults
    assert (caps.default_num_inference_steps, caps.default_guidance_scale) == (7, 2.0)
