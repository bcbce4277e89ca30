"""Mask2IV inference: conditioning, sampling and the two-stage pipeline."""

from .ddim import SafeDDIMScheduler
from .pipeline import Mask2IVOutput, Mask2IVPipeline
from .pipeline_config import PipelineConfig, SamplingDefaults
from .sampling import (Mask2IVInterrupted, Mask2IVNonFiniteError, StepInfo, denoise,
                       dynamicrafter_scheduler)
from .tiny import build_tiny_pipeline
from .validation import Mask2IVInputError

__all__ = [
    "Mask2IVInputError", "Mask2IVInterrupted", "Mask2IVNonFiniteError", "Mask2IVOutput",
    "Mask2IVPipeline", "PipelineConfig", "SafeDDIMScheduler", "SamplingDefaults", "StepInfo",
    "build_tiny_pipeline", "denoise", "dynamicrafter_scheduler",
]
