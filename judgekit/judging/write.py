"""Writing a finished run: judgments, items file and manifest, replacing old files together."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from judgekit.data.records import RunFiles
from judgekit.judging.results import JudgeRun
from judgekit.judging.run_manifest import build_manifest
from judgekit.judging.views import item_verdicts


def write_run(run: JudgeRun, output: Path | str) -> Path:
    """Write ``run`` to ``output`` (JSONL or CSV) with its sidecars; an existing run there is
    replaced whole, only once every new file is written."""
    files = RunFiles(output, "overwrite")
    finished = datetime.now(timezone.utc)
    manifest = build_manifest(
        run, finished - timedelta(seconds=run.seconds), finished, str(Path(output).resolve())
    )
    files.commit(item_verdicts(run), manifest, rows=run.judgments)
    return Path(output)
