"""Run mutated archives through the real CLI and check the invariants of issue 9.

Each case runs in a forked child (imports are paid once, by the parent): the
child runs `forensics scan INPUT --json OUT.json --html OUT.html` through the
CLI's own `main()` with its stdout and stderr on files, then renders the saved
JSON with `history` and the terminal summary again. The parent enforces a hard
timeout, reads the child's peak RSS from wait4(), and checks:

* exit code 0, 1 or 2, and no traceback or "internal error" on stderr;
* bounded time (TIME_LIMIT) and memory (RSS_LIMIT_MB; a forked child is charged
  its growth over the parent plus FRESH_PROCESS_MB);
* nothing written in the case directory but the input and the two outputs;
* the JSON parses back into the `Report` model that `forensics schema` is
  generated from (no jsonschema package here, so the model itself validates), and
  the HTML parses, ends with </html> and holds no raw control or bidi character;
* stdout and stderr hold no raw ESC, BEL, CR or bidi control, and no line other
  than the first one starts with a verdict (no input can start a line of its own).

With `--commands` (and in the suite's second batch) each child also runs the
exports on the same input, each through `main()`: `scan --cyclonedx`, `timeline`
(jsonl and bodyfile), `hashes --merged` and `extract` of one regular file the scan
listed, with the same exit-code, traceback and terminal checks on each, the
written files held to the same raw-character rule, the CycloneDX and JSON lines
parsed, and nothing written but the named outputs (extract: only its DIR, with
at most the content file and manifest.json in it).

Usage:
  python tests/fuzz/harness.py --minutes 20 [--seed N] [--keep DIR] [--commands]
  python tests/fuzz/harness.py --cases 300 --seed 9

A failing input is written to --keep (default tests/fuzz/regressions/) as
`<seed>-<case>.tar`: commit it, and tests/fuzz/test_fuzz.py replays it forever.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import select
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent.parent))

from mutate import make_case  # noqa: E402

from forensics import cli  # noqa: E402,F401  (imported once in the parent: children fork with it)
from forensics.models import Report  # noqa: E402
from forensics.render.history_text import render_history  # noqa: E402
from forensics.render.text import render_text  # noqa: E402
from forensics.serialize import from_json  # noqa: E402

REGRESSIONS = HERE / "regressions"
TIME_LIMIT = 60.0  # seconds per case, on a loaded 2-core machine
RSS_LIMIT_MB = 300
# A forked child starts with its parent's resident pages (a pytest process can hold
# hundreds of MB): the case is charged its growth over the parent, plus what a fresh
# `forensics` process holds after its imports (43 MB measured with /usr/bin/time -v).
FRESH_PROCESS_MB = 45
VERDICT = re.compile(r"^(CLEAN|SUSPICIOUS|TAMPERED|UNREADABLE):", re.M)
RAW_TERMINAL = re.compile("[\x07\x1b\r\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
RAW_HTML = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


@dataclass
class Outcome:
    name: str
    rc: int | None
    seconds: float
    rss_mb: float
    problems: list[str] = field(default_factory=list)


# The exports run after the scan with --commands: (name, argv after `forensics`, the
# files or directory they may write). EXTRACT_PATH is replaced by a regular file the
# scan listed (or the command is skipped when it listed none).
EXTRACT_PATH = "<path>"
EXPORTS: list[tuple[str, list[str], list[str]]] = [
    ("cyclonedx", ["scan", "input.tar", "--cyclonedx", "sbom.cdx.json", "-q"], ["sbom.cdx.json"]),
    ("timeline-jsonl", ["timeline", "input.tar", "-f", "jsonl", "-o", "tl.jsonl", "-q"], ["tl.jsonl"]),
    ("timeline-body", ["timeline", "input.tar", "-f", "bodyfile", "-o", "tl.body", "-q"], ["tl.body"]),
    ("hashes", ["hashes", "input.tar", "--merged", "-o", "set.hashdeep", "-q"], ["set.hashdeep"]),
    ("extract", ["extract", "input.tar", EXTRACT_PATH, "-o", "ex"], ["ex"]),
]
EXPORT_OUTPUTS = {f for _, _, files in EXPORTS for f in files} | {"exports"}


def _run_cli(argv: list[str]) -> int:
    sys.argv = ["forensics", *argv]
    try:
        cli.main()
        return 0
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 3
    except BaseException as exc:  # noqa: BLE001 - reported by the parent as a crash
        sys.stderr.write(f"Traceback (escaped the CLI): {type(exc).__name__}: {exc}\n")
        return 4


def _a_regular_file(out_json: Path) -> str | None:
    import json

    try:
        doc = json.loads(out_json.read_bytes())
        for layer in doc["images"][0]["layers"]:
            for f in layer["files"]:
                if f["type"] == "file":
                    return f["path"]
    except Exception:  # noqa: BLE001 - no report, or no file: extract is skipped
        return None
    return None


def _exports(d: Path, out_json: Path) -> None:
    """Each export's exit code and stdout/stderr go to exports/NAME.{rc,out,err}."""
    logs = d / "exports"
    logs.mkdir()
    path = _a_regular_file(out_json)
    for name, argv, _files in EXPORTS:
        if EXTRACT_PATH in argv:
            if path is None:
                continue
            argv = [path if a == EXTRACT_PATH else a for a in argv]
        fo = os.open(logs / f"{name}.out", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        fe = os.open(logs / f"{name}.err", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(fo, 1)
        os.dup2(fe, 2)
        rc = _run_cli(argv)
        sys.stdout.flush()
        sys.stderr.flush()
        (logs / f"{name}.rc").write_text(str(rc))


def _child(inp: Path, out_json: Path, out_html: Path, stdout: Path, stderr: Path, exports: bool = False) -> None:
    """In the forked child: the real CLI, then the saved JSON rendered again."""
    fd_out = os.open(stdout, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    fd_err = os.open(stderr, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.dup2(fd_out, 1)
    os.dup2(fd_err, 2)
    code = _run_cli(["scan", str(inp), "--json", str(out_json), "--html", str(out_html)])
    try:
        if out_json.exists():
            report = from_json(Report, out_json.read_bytes())
            # Each view opens with its own verdict line: each is checked on its own file.
            (out_json.parent / "history.txt").write_text(render_history(report, width=120), "utf-8")
            (out_json.parent / "summary.txt").write_text(render_text(report), "utf-8")
    except BaseException as exc:  # noqa: BLE001
        sys.stderr.write(f"Traceback (rendering the saved JSON): {type(exc).__name__}: {exc}\n")
        code = 5
    sys.stdout.flush()
    sys.stderr.flush()
    if exports and code in (0, 1, 2):
        try:
            _exports(out_json.parent, out_json)
        except BaseException as exc:  # noqa: BLE001 - a harness failure, reported as a crash
            os.dup2(fd_err, 2)
            sys.stderr.write(f"Traceback (running the exports): {type(exc).__name__}: {exc}\n")
            sys.stderr.flush()
            os._exit(8)
    os._exit(code)


def _wait(pid: int, limit: float) -> tuple[int | None, float, float]:
    """(exit code or None on timeout, seconds, peak RSS in MB) of a child."""
    t0 = time.monotonic()
    while True:
        got, status, usage = os.wait4(pid, os.WNOHANG)
        if got:
            rc = os.waitstatus_to_exitcode(status)
            return rc, time.monotonic() - t0, usage.ru_maxrss / 1024
        if time.monotonic() - t0 > limit:
            os.kill(pid, signal.SIGKILL)
            _, status, usage = os.wait4(pid, 0)
            return None, time.monotonic() - t0, usage.ru_maxrss / 1024
        select.select([], [], [], 0.01)


class _Html(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags = 0

    def handle_starttag(self, tag, attrs) -> None:
        self.tags += 1


def _rss_now_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1 << 20)


def start(data: bytes | None, workdir: Path, case_seed: int = 0, exports: bool = False) -> tuple[int, Path]:
    """Fork a child on this input (None: the child builds the mutant of `case_seed` itself,
    so that building runs in parallel too); (its pid, its case directory)."""
    d = Path(tempfile.mkdtemp(prefix="case-", dir=workdir))
    inp, oj, oh, so, se = d / "input.tar", d / "out.json", d / "out.html", d / "stdout", d / "stderr"
    if data is not None:
        inp.write_bytes(data)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        try:
            if data is None:
                try:
                    inp.write_bytes(make_case(random.Random(case_seed))[1])
                except Exception as exc:  # noqa: BLE001 - the mutator's bug, not the tool's
                    se.write_text(f"mutator: {type(exc).__name__}: {exc}\n")
                    os._exit(7)
            os.chdir(d)
            _child(inp, oj, oh, so, se, exports)
        finally:
            os._exit(6)
    return pid, d


def check(name: str, data: bytes, workdir: Path) -> Outcome:
    base = _rss_now_mb()
    pid, d = start(data, workdir)
    rc, seconds, rss = _wait(pid, TIME_LIMIT)
    return finish(name, d, rc, seconds, max(0.0, rss - base) + FRESH_PROCESS_MB)


def finish(name: str, d: Path, rc: int | None, seconds: float, rss: float) -> Outcome:
    """Check the invariants on a finished child's case directory."""
    oj, oh, so, se = d / "out.json", d / "out.html", d / "stdout", d / "stderr"
    out = Outcome(name, rc, seconds, rss)
    p = out.problems
    if rc is None:
        p.append(f"timeout after {seconds:.0f} s")
    elif rc == 7:
        p.append("the mutator failed to build this case (see stderr): a harness bug")
    elif rc not in (0, 1, 2):
        p.append(f"exit code {rc}")
    if rss > RSS_LIMIT_MB:
        p.append(f"peak RSS {rss:.0f} MB")
    err = se.read_text("utf-8", "replace") if se.exists() else ""
    text = so.read_text("utf-8", "replace") if so.exists() else ""
    if "Traceback" in err or "internal error" in err:
        p.append("stderr: " + err.strip().splitlines()[-1][:300])
    if err.strip() and len(err.strip().splitlines()) > 1:
        p.append(f"stderr has {len(err.strip().splitlines())} lines, not one")
    views = [("stdout", text)] + [
        (v, (d / v).read_text("utf-8", "replace")) for v in ("history.txt", "summary.txt") if (d / v).exists()
    ]
    for label, t in [*views, ("stderr", err)]:
        m = RAW_TERMINAL.search(t)
        if m:
            p.append(f"{label} holds a raw {m.group()!r}")
    # The scan, the history view and the summary each print one verdict line, their
    # first: no input can start a line of its own that reads as one.
    for label, t in views:
        verdicts = [m.start() for m in VERDICT.finditer(t)]
        if len(verdicts) > 1 or (verdicts and verdicts[0] != 0):
            p.append(f"{len(verdicts)} lines of {label} start with a verdict")
    _check_exports(d, p)
    extra = sorted(x.name for x in d.iterdir()) if d.exists() else []
    allowed = {"input.tar", "out.json", "out.html", "stdout", "stderr", "history.txt", "summary.txt"} | EXPORT_OUTPUTS
    if set(extra) - allowed:
        p.append(f"wrote {sorted(set(extra) - allowed)}")
    if rc in (0, 1):
        if not oj.exists() or not oh.exists():
            p.append("exit 0/1 without both outputs")
        else:
            try:
                from_json(Report, oj.read_bytes())
            except Exception as exc:  # noqa: BLE001
                p.append(f"JSON does not validate: {str(exc)[:200]}")
            html = oh.read_bytes().decode("utf-8", "strict") if oh.stat().st_size else ""
            if not html.rstrip().endswith("</html>"):
                p.append("HTML incomplete")
            parser = _Html()
            try:
                parser.feed(html)
                parser.close()
            except Exception as exc:  # noqa: BLE001
                p.append(f"HTML does not parse: {exc}")
            m = RAW_HTML.search(html)
            if m:
                p.append(f"HTML holds a raw {m.group()!r}")
    if not p:
        shutil.rmtree(d)
    return out


def _check_exports(d: Path, p: list[str]) -> None:
    logs = d / "exports"
    if not logs.is_dir():
        return
    import json

    for name, _argv, files in EXPORTS:
        rcf = logs / f"{name}.rc"
        if not rcf.exists():
            continue
        rc = int(rcf.read_text())
        err = (logs / f"{name}.err").read_text("utf-8", "replace")
        text = (logs / f"{name}.out").read_text("utf-8", "replace")
        if rc not in (0, 1, 2):
            p.append(f"{name}: exit code {rc}")
        if "Traceback" in err or "internal error" in err:
            p.append(f"{name}: stderr: " + err.strip().splitlines()[-1][:300])
        if len(err.strip().splitlines()) > 1:
            p.append(f"{name}: stderr has {len(err.strip().splitlines())} lines, not one")
        for label, t in (("stdout", text), ("stderr", err)):
            m = RAW_TERMINAL.search(t)
            if m:
                p.append(f"{name}: {label} holds a raw {m.group()!r}")
        for f in files:
            target = d / f
            written = [target] if target.is_file() else sorted(target.rglob("*")) if target.is_dir() else []
            if target.is_dir():
                names = sorted(x.name for x in written)
                if len(names) > 2 or any(x.is_symlink() or not x.is_file() for x in written):
                    p.append(f"{name}: wrote {names} into its DIR")
            for w in written:
                if not w.is_file() or w.is_symlink() or w.name.endswith(".bin"):
                    continue  # the extracted bytes are the image's, raw by design
                try:
                    body = w.read_bytes().decode("utf-8", "strict")
                except UnicodeDecodeError as exc:
                    p.append(f"{name}: {w.name} is not UTF-8: {exc}")
                    continue
                # JSON escapes what would forge a line; the line formats must escape it themselves
                if not w.name.endswith((".json", ".jsonl")):
                    m = RAW_HTML.search(body.replace("\n", " ").replace("\t", " "))
                    if m:
                        p.append(f"{name}: {w.name} holds a raw {m.group()!r}")
                try:
                    if w.name.endswith(".json"):
                        json.loads(body)
                    elif w.name.endswith(".jsonl"):
                        for line in body.splitlines():
                            json.loads(line)
                except ValueError as exc:
                    p.append(f"{name}: {w.name} does not parse: {str(exc)[:100]}")
        if rc in (0, 1) and name != "extract" and not all((d / f).exists() for f in files):
            p.append(f"{name}: exit {rc} without its output")


def warm_up() -> None:
    """Compile the templates and touch every renderer once, in the parent: each forked
    child then starts warm (a template compile costs more than a small case)."""
    from hostile import Oci

    from forensics.pipeline import analyze
    from forensics.render.html import render_html

    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "warm.tar"
        p.write_bytes(Oci().tar())
        report = analyze(str(p), command=[])
        render_html(report)
        render_text(report)
        render_history(report, width=120)


def run(
    seed: int,
    cases: int | None = None,
    minutes: float | None = None,
    keep: Path = REGRESSIONS,
    workdir: Path | None = None,
    quiet: bool = False,
    jobs: int = 2,
    inputs: list[tuple[str, bytes]] | None = None,
    exports: bool = False,
) -> list[Outcome]:
    """`cases` mutants of `seed` (or until `minutes` pass), or the given `inputs`;
    `jobs` children at a time."""
    warm_up()
    rng = random.Random(seed)
    work = Path(workdir or tempfile.mkdtemp(prefix="forensics-fuzz-"))
    deadline = time.monotonic() + minutes * 60 if minutes else None
    outcomes: list[Outcome] = []
    running: dict[int, tuple[str, bytes, Path, float, float]] = {}
    n = 0

    def more() -> bool:
        if inputs is not None:
            return n < len(inputs)
        return (cases is None or n < cases) and (deadline is None or time.monotonic() < deadline)

    while more() or running:
        while more() and len(running) < jobs:
            case_seed = 0
            if inputs is not None:
                name, data = inputs[n]
            else:
                case_seed = rng.getrandbits(32)
                name, data = f"{seed}-{case_seed}", None
            base = _rss_now_mb()
            pid, d = start(data, work, case_seed, exports)
            running[pid] = (name, data, d, time.monotonic(), base)
            n += 1
        for pid, (name, _data, d, t0, base) in list(running.items()):
            got, status, usage = os.wait4(pid, os.WNOHANG)
            timed_out = not got and time.monotonic() - t0 > TIME_LIMIT
            if timed_out:
                os.kill(pid, signal.SIGKILL)
                got, status, usage = os.wait4(pid, 0)
            if not got:
                continue
            del running[pid]
            rc = None if timed_out else os.waitstatus_to_exitcode(status)
            failing_input = d / "input.tar"
            o = finish(name, d, rc, time.monotonic() - t0, max(0.0, usage.ru_maxrss / 1024 - base) + FRESH_PROCESS_MB)
            outcomes.append(o)
            if o.problems:
                if inputs is None and failing_input.exists():
                    keep.mkdir(parents=True, exist_ok=True)
                    (keep / f"{name}.tar").write_bytes(
                        failing_input.read_bytes()
                    )  # kept as failing, replayed by test_fuzz.py
                if not quiet:
                    print(f"FAIL {o.name}: {'; '.join(o.problems)}", flush=True)
        select.select([], [], [], 0.005)
    return outcomes


def summary(outcomes: list[Outcome], seconds: float) -> str:
    rcs: dict[object, int] = {}
    for o in outcomes:
        rcs[o.rc] = rcs.get(o.rc, 0) + 1
    fails = sum(1 for o in outcomes if o.problems)
    slow = max(outcomes, key=lambda o: o.seconds, default=None)
    big = max(outcomes, key=lambda o: o.rss_mb, default=None)
    return (
        f"{len(outcomes)} cases in {seconds:.0f} s, {fails} failing; exit codes {dict(sorted(rcs.items(), key=str))}; "
        f"slowest {slow.seconds:.1f} s ({slow.name}), peak RSS {big.rss_mb:.0f} MB ({big.name})"
        if outcomes
        else "no cases"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, help="run for this long (a fresh seed unless --seed)")
    ap.add_argument("--cases", type=int, help="run this many cases")
    ap.add_argument("--seed", type=int, help="the batch seed (default: random, printed)")
    ap.add_argument("--keep", type=Path, default=REGRESSIONS, help="where failing inputs are written")
    ap.add_argument("--jobs", type=int, default=2, help="cases run at the same time (default 2)")
    ap.add_argument(
        "--commands", action="store_true", help="also run cyclonedx, timeline, hashes and extract on each case"
    )
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().getrandbits(31)
    if args.minutes is None and args.cases is None:
        args.cases = 300
    print(f"seed {seed}", flush=True)
    t0 = time.monotonic()
    outcomes = run(seed, args.cases, args.minutes, args.keep, jobs=args.jobs, exports=args.commands)
    print(summary(outcomes, time.monotonic() - t0), flush=True)
    return 1 if any(o.problems for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
