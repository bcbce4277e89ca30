"""Mask2IV inference: conditioning, sampling and the two-stage pipeline."""

from .pipeline import Mask2IVOutput, Mask2IVPipeline, PipelineConfig
from .sampling import Mask2IVInterrupted, StepInfo, denoise, dynamicrafter_scheduler
from .tiny import build_tiny_pipeline
from .validation import Mask2IVInputError

__all__ = [
    "Mask2IVInputError", "Mask2IVInterrupted", "Mask2IVOutput", "Mask2IVPipeline",
    "PipelineConfig", "StepInfo", "build_tiny_pipeline", "denoise", "dynamicrafter_scheduler",
]
