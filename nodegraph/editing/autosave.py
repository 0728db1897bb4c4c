"""Autosave into ``engine.api.paths.autosave_dir()``: an atomic snapshot beside a lock holding the
pid; after a crash the next start finds a snapshot whose lock's pid is dead and offers
Recover / Discard (files are removed only on Discard or a clean close — never silently)."""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

from engine.api import document, paths

INTERVAL_MS = 2 * 60 * 1000  # a periodic safety net
DEBOUNCE_MS = 3000  # after each edit: a killed editor loses at most a few seconds of work


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


class Autosave:
    """One editor window's autosave slot (``<session>.json``, ``.lock``, ``.info.json``)."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder or paths.autosave_dir()
        self.session = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"

    def _file(self, suffix: str) -> Path:
        return self.folder / f"{self.session}{suffix}"

    def write(self, doc: dict, source: str | None) -> Path:
        paths.ensure(self.folder)
        lock = self._file(".lock")
        if not lock.exists():
            lock.write_text(str(os.getpid()))
        info = {"source": source, "time": time.time(), "name": doc.get("meta", {}).get("name")}
        _atomic_text(self._file(".info.json"), json.dumps(info))
        document.save(doc, self._file(".json"))
        return self._file(".json")

    def clear(self) -> None:
        """Remove this session's files (clean close, or the document was saved)."""
        for suffix in (".json", ".info.json", ".lock"):
            self._file(suffix).unlink(missing_ok=True)


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def orphans(folder: Path | None = None) -> list[dict]:
    """Snapshots left by sessions that are no longer running: {session, path, source, time}."""
    folder = folder or paths.autosave_dir()
    if not folder.is_dir():
        return []
    out = []
    for snap in sorted(folder.glob("*.json")):
        if snap.name.endswith(".info.json"):
            continue
        session = snap.name[: -len(".json")]
        lock = folder / f"{session}.lock"
        try:
            pid = int(lock.read_text().strip()) if lock.exists() else -1
        except (OSError, ValueError):
            pid = -1
        if pid_alive(pid):
            continue  # a running editor (maybe this one) owns it
        try:
            info = json.loads((folder / f"{session}.info.json").read_text())
        except (OSError, ValueError):
            info = {}
        out.append({"session": session, "path": snap, "source": info.get("source"),
                    "time": info.get("time"), "name": info.get("name")})
    return out


def discard(orphan: dict) -> None:
    folder = Path(orphan["path"]).parent
    for suffix in (".json", ".info.json", ".lock"):
        (folder / f"{orphan['session']}{suffix}").unlink(missing_ok=True)
