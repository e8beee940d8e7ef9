"""`OUT/index.jsonl`: one line per archive, written by the submitting process alone.

Workers return their summaries; this process keeps them, in the inputs' order, and
rewrites the whole file to a temporary name then renames it over the old one (at most
every few seconds during a run, and at its end), so a reader or a resumed run sees a
whole index, never a torn line. A resumed run reads it back: an input whose sha256 has
a line (and, unless the line is an error, its report file) is skipped unless --force.
"""

from __future__ import annotations

import json
import os
import time

INDEX = "index.jsonl"


def read_index(out: str) -> dict[str, dict]:
    """sha256 -> line of the index already in `out` (an unreadable line is ignored)."""
    lines: dict[str, dict] = {}
    try:
        with open(os.path.join(out, INDEX), encoding="utf-8") as fh:
            for raw in fh:
                try:
                    line = json.loads(raw)
                except (ValueError, RecursionError):  # the folder may be shared: a line nested past the parser
                    continue
                if isinstance(line, dict) and isinstance(line.get("sha256"), str):
                    lines[line["sha256"]] = line
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    return lines


def done_set(out: str, lines: dict[str, dict]) -> frozenset[str]:
    """The inputs that already have a result: an error line, or a line whose report exists."""
    return frozenset(
        sha
        for sha, line in lines.items()
        if line.get("verdict") != "skipped"
        and (line.get("errors") and not line.get("report") or os.path.isfile(os.path.join(out, line.get("report", ""))))
    )


def write_index(out: str, lines: list[dict]) -> None:
    path = os.path.join(out, INDEX)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        for line in lines:
            fh.write(json.dumps(line, ensure_ascii=True, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class Index:
    """The lines of this run, in input order, merged with the previous run's and flushed
    atomically now and then, so that an interrupted run leaves a whole index to resume from."""

    def __init__(self, out: str, order: list[str], previous: dict[str, dict] | None = None, every: float = 2.0) -> None:
        self.out = out
        self.order = order  # input paths
        self.previous = previous or {}  # sha256 -> line of the index found in `out`
        self.lines: dict[str, dict] = {}  # path -> line of this run
        self.every = every
        self._last = time.monotonic()

    def add(self, line: dict) -> None:
        self.lines[line["path"]] = line
        if time.monotonic() - self._last >= self.every:
            self.flush()

    def merged(self) -> list[dict]:
        """This run's lines in input order (a skipped input keeps its previous line, under the
        path given now), then the previous lines of inputs not given this time."""
        lines, seen = [], set()
        for path in self.order:
            line = self.lines.get(path)
            if line is None:
                continue
            if line.get("verdict") == "skipped" and line.get("sha256") in self.previous:
                line = dict(self.previous[line["sha256"]], path=path)
            lines.append(line)
            seen.add(line.get("sha256"))
        rest = sorted((ln for sha, ln in self.previous.items() if sha not in seen), key=lambda ln: ln.get("path", ""))
        return lines + rest

    def flush(self, lines: list[dict] | None = None) -> None:
        write_index(self.out, self.merged() if lines is None else lines)
        self._last = time.monotonic()
