"""Writing outputs so that a failure never leaves half a file, nor overwrites one silently."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from hsz.errors import WriteError


def check_writable(paths: Sequence[Path], overwrite: bool) -> None:
    """Refuse before any work is done when an output exists and --overwrite was not given."""
    for p in paths:
        if p.exists() and not overwrite:
            raise WriteError(f"{p} already exists; it is replaced only when overwrite is "
                             "asked for",
                             option="overwrite")
        if p.exists() and p.is_dir():
            raise WriteError(f"{p} is a directory")
        parent = p.parent if str(p.parent) else Path(".")
        if not parent.is_dir():
            raise WriteError(f"cannot write {p}: folder {parent} does not exist")


@contextlib.contextmanager
def atomic_outputs(paths: Sequence[Path | str], overwrite: bool = False) -> Iterator[list[Path]]:
    """Yield temporary paths beside each target; rename them into place only on success.

    Several paths move together (an ENVI header and its data file), so a failure part-way
    leaves none of them.  The temporaries keep the target's suffix because some writers
    (GDAL) choose behaviour by extension.
    """
    targets = [Path(p) for p in paths]
    check_writable(targets, overwrite)
    temps: list[Path] = []
    try:
        for t in targets:
            fd, name = tempfile.mkstemp(
                prefix=f".{t.stem}.", suffix=f".part{t.suffix}", dir=str(t.parent or ".")
            )
            os.close(fd)
            os.unlink(name)  # writers create the file themselves
            temps.append(Path(name))
        yield temps
        for t in targets:
            if t.exists() and not overwrite:
                raise WriteError(f"{t} appeared while writing; it is replaced only when "
                                 "overwrite is asked for",
                                 option="overwrite")
        for tmp, t in zip(temps, targets, strict=True):
            if not tmp.exists():
                raise WriteError(f"internal error: writer produced no {t.name}")
            os.replace(tmp, t)
    finally:
        for tmp in temps:
            with contextlib.suppress(OSError):
                tmp.unlink()
