"""Long-running jobs of the service (batched, resumable, with progress): the embedding job."""

from __future__ import annotations

from curate.jobs.embed import EmbedJob, FrameReadError, run_embed_job

__all__ = ["EmbedJob", "FrameReadError", "run_embed_job"]
