"""Scale benchmark skeleton (filled below)."""

from __future__ import annotations

import numpy as np

# ------------------------------------------------------------------------------------- data
def drive_vectors(
    n: int,
    d: int = 256,
    *,
    seed: int = 0,
    frames_per_drive: int = 200,
    modes: int = 64,
    start: int = 0,
) -> np.ndarray:
    """Rows ``start .. start + n`` of a seeded pool of drive-like embeddings (float32).

    Drives of ``frames_per_drive`` consecutive frames. Each drive sits near one of ``modes``
    scene types (unit-variance centres, so modes are ~sqrt(2d) apart) with a per-drive offset
    (scale 0.3); along a drive the frame vector follows a random walk (step 0.02 per dimension)
    that stands still for about a third of the frames, giving runs of near-duplicates (jitter
    1e-3). Generated drive by drive from per-drive seeds, so any slice is reproducible on its own
    and a pool is built in bounded memory. O(n*d) time.
    """
    out = np.empty((n, d), dtype=np.float32)
    centres = np.random.default_rng([seed, 1]).normal(size=(modes, d)).astype(np.float32)
    first_drive = start // frames_per_drive
    last_drive = (start + n - 1) // frames_per_drive if n else first_drive - 1
    for drive in range(first_drive, last_drive + 1):
        rng = np.random.default_rng([seed, 2, drive])
        base = centres[rng.integers(modes)] + np.float32(0.3) * rng.standard_normal(d, np.float32)
        steps = np.float32(0.02) * rng.standard_normal((frames_per_drive, d), np.float32)
        steps[rng.random(frames_per_drive) < 0.35] = 0.0  # standing still: a run of duplicates
        walk = base + np.cumsum(steps, axis=0)
        walk += np.float32(1e-3) * rng.standard_normal(walk.shape, np.float32)
        lo = max(start, drive * frames_per_drive)
        hi = min(start + n, (drive + 1) * frames_per_drive)
        out[lo - start : hi - start] = walk[lo - drive * frames_per_drive : hi - drive * frames_per_drive]
    return out
