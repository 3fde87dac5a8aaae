"""``OUTDIR/status.json``: where a run is, for people and for ``msorch status``.

Written by the coordinator (atomically: temporary file, then rename) at most
once a second while the run goes on, and at its end, so it is readable at any
moment — unlike an HDF5 file another process is writing.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

FILE = "status.json"


def write(outdir: Path, **fields) -> None:
    """Replace the status file with ``fields`` plus the time of writing."""
    path = Path(outdir) / FILE
    tmp = path.with_name(f".{FILE}.tmp")
    tmp.write_text(json.dumps({**fields, "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, indent=1))
    os.replace(tmp, path)


def read(outdir: Path) -> dict | None:
    path = Path(outdir) / FILE
    return json.loads(path.read_text()) if path.exists() else None
