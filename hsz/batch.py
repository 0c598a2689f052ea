"""Archiving many scenes: each input file is one job, run where a :class:`Runner` says.

A job writes its output atomically (a finished file or none), so a batch that is stopped
and started again finds the files already done and skips them: nothing is encoded twice
and nothing half-written is ever taken for a result.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hsz.errors import HszError
from hsz.io.scene import SceneSpec


@dataclass(frozen=True)
class FileJob:
    """One input scene to encode into ``output`` with the batch's settings."""

    spec: SceneSpec
    output: str
    options: tuple[tuple[str, Any], ...]  # keyword arguments of hsz.api.encode_scene
    overwrite: bool = False


def output_for(input_path: Path, out_dir: Path) -> Path:
    """Where a batch writes an input's file: its name with the suffix ``.hsz``."""
    return out_dir / (input_path.stem + ".hsz")


def encode_file(job: FileJob) -> dict[str, Any]:
    """Encode one file (in whatever process runs the job); a summary, or the error."""
    from hsz import api
    from hsz.fsutil import atomic_outputs

    out = Path(job.output)
    try:
        with job.spec.open() as scene:
            result = api.encode_scene(scene, **dict(job.options))
        with atomic_outputs([out], job.overwrite) as (tmp,):
            tmp.write_bytes(result.data)
    except HszError as exc:
        return {"input": job.spec.path, "output": str(out), "error": str(exc)}
    return {"input": job.spec.path, "output": str(out), "bytes": result.size,
            "bpppb": result.bpppb, **{k: float(v) for k, v in result.quality.items()},
            "seconds": result.seconds}
