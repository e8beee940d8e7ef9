"""Issue 16, the evidence is never touched: through the real CLI, on the bundled samples.

Refusals (exit 2, one line naming both paths, nothing read, nothing written), atomic
outputs (a failure mid-write, Ctrl-C, SIGTERM), the input checked again after the
analysis, --keep-input on a piped archive, and the report's `input` block.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import forensics.pipeline
from forensics.cli import app
from forensics.evidence import AtomicOutput
from forensics.models import Report

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
SAMPLE = SAMPLES / "relay-genuine.oci.tar"


def sha(p: Path) -> str:
    return "sha256:" + hashlib.sha256(p.read_bytes()).hexdigest()


def cli(*args: str, stdin: bytes | None = None):
    return CliRunner().invoke(app, list(args), input=stdin)


def one_error_line(r) -> str:
    lines = r.stderr.strip().splitlines()
    assert r.exit_code == 2, (r.exit_code, r.output)
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    assert len(lines) == 1 and lines[0].startswith("forensics: error: "), r.stderr
    return lines[0]


def listing(d: Path) -> dict[str, tuple[int, int, str]]:
    """Every name under d with its size, mtime and content digest."""
    out = {}
    for p in sorted(d.rglob("*")):
        st = p.lstat()
        out[str(p.relative_to(d))] = (st.st_size, st.st_mtime_ns, sha(p) if p.is_file() and not p.is_symlink() else "")
    return out


@pytest.fixture
def case(tmp_path, monkeypatch):
    """A working directory holding a copy of the sample and an extracted OCI layout."""
    shutil.copy(SAMPLE, tmp_path / "suspect.tar")
    with tarfile.open(SAMPLE) as t:
        t.extractall(tmp_path / "layout", filter="tar")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def no_read(monkeypatch):
    """Fail the test if the input is read at all."""

    def refuse(*a, **kw):
        raise AssertionError("the input was read before the outputs were checked")

    monkeypatch.setattr(forensics.pipeline, "read_input", refuse)


# ---------------------------------------------------------------- refusals


def _hard(case):
    os.link("suspect.tar", "copy.tar")
    return ["scan", "suspect.tar", "--json", "copy.tar"]


def _symlink(case):
    os.symlink("suspect.tar", "link.tar")
    return ["scan", "suspect.tar", "--json", "link.tar"]


def _symlink_dir(case):
    os.symlink("layout", "alias")
    return ["scan", "layout", "--html", "alias/report.html"]


REFUSALS = {
    "same path": lambda c: ["scan", "suspect.tar", "--json", "suspect.tar"],
    "dot slash": lambda c: ["scan", "suspect.tar", "--json", "./suspect.tar"],
    "dot dot": lambda c: ["scan", "suspect.tar", "--html", "layout/../suspect.tar"],
    "absolute": lambda c: ["scan", "suspect.tar", "--json", str(c / "suspect.tar")],
    "symlink to the input": _symlink,
    "hard link to the input": _hard,
    "report inside the layout": lambda c: ["scan", "layout", "--html", "layout/report.html"],
    "over the layout's index": lambda c: ["scan", "layout/", "--json", "layout/index.json"],
    "deep inside the layout": lambda c: ["scan", "layout", "--json", "./layout/blobs/sha256/../x.json"],
    "via a symlinked directory": _symlink_dir,
    "two outputs, one file": lambda c: ["scan", "suspect.tar", "--json", "out.json", "--html", "./out.json"],
    "two outputs via ..": lambda c: ["scan", "suspect.tar", "--json", "out", "--html", "layout/../out"],
    "history --json": lambda c: ["history", "suspect.tar", "--json", "./suspect.tar"],
    "diff over B": lambda c: ["diff", str(SAMPLES / "relay-forged.oci.tar"), "suspect.tar", "--html", "suspect.tar"],
    "keep-input over an output": lambda c: ["scan", "-", "--keep-input", "out", "--json", "./out"],
}


@pytest.mark.parametrize("name", list(REFUSALS))
def test_output_reaching_the_input_is_refused(case, no_read, name):
    args = REFUSALS[name](case)
    before_tar, before_layout = sha(case / "suspect.tar"), listing(case / "layout")
    names_before = sorted(os.listdir(case))
    line = one_error_line(cli(*args))
    outputs = [args[i + 1] for i, a in enumerate(args) if a in ("--json", "--html", "--keep-input")]
    for path in outputs:
        assert path in line, line  # names both paths
    assert "refusing" in line
    assert sha(case / "suspect.tar") == before_tar
    assert listing(case / "layout") == before_layout
    assert sorted(os.listdir(case)) == names_before  # nothing written, not even a temporary file


def test_the_message_names_the_input(case, no_read):
    line = one_error_line(cli("scan", "layout", "--html", "layout/report.html"))
    assert "inside the input directory layout" in line
    os.link("suspect.tar", "copy.tar")
    line = one_error_line(cli("scan", "suspect.tar", "--json", "copy.tar"))
    assert "the input suspect.tar under another name (a hard link)" in line


def test_keep_input_over_the_redirected_stdin_is_refused(case):
    """`scan - --keep-input x.tar < x.tar` would truncate the file being read."""
    before = sha(case / "suspect.tar")
    with open(case / "suspect.tar", "rb") as stdin:
        r = subprocess.run(
            [sys.executable, "-m", "forensics", "scan", "-", "--keep-input", "suspect.tar"],
            stdin=stdin,
            capture_output=True,
            cwd=case,
        )
    assert r.returncode == 2 and b"redirected from" in r.stderr, r.stderr
    assert sha(case / "suspect.tar") == before


def test_report_does_not_overwrite_its_result(case, monkeypatch):
    assert cli("scan", "suspect.tar", "--json", "r.json", "-q").exit_code == 0
    before = sha(case / "r.json")
    import forensics.cli.report

    def refuse(*a):
        raise AssertionError("the result was read before the output was checked")

    monkeypatch.setattr(forensics.cli.report, "load_report", refuse)
    line = one_error_line(cli("report", "r.json", "--html", "./r.json"))
    assert "r.json" in line and sha(case / "r.json") == before


def test_keep_input_needs_stdin(case, no_read):
    line = one_error_line(cli("scan", "suspect.tar", "--keep-input", "k.tar"))
    assert "stdin" in line and not (case / "k.tar").exists()


def test_an_output_in_a_missing_directory_is_refused_before_reading(case, no_read):
    line = one_error_line(cli("scan", "suspect.tar", "--json", "nowhere/r.json"))
    assert "nowhere" in line


# ---------------------------------------------------------------- atomic outputs


def partials(d: Path) -> list[str]:
    return [n for n in os.listdir(d) if n.endswith(".partial")]


def test_failure_mid_write_keeps_the_previous_report(case, monkeypatch):
    assert cli("scan", "suspect.tar", "--json", "r.json", "-q").exit_code == 0
    previous = (case / "r.json").read_bytes()
    real_write = AtomicOutput.write

    def half_then_fail(self, data):
        real_write(self, data[: len(data) // 2])
        assert partials(case), "the half is written to a temporary file beside the target"
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(AtomicOutput, "write", half_then_fail)
    line = one_error_line(cli("scan", "suspect.tar", "--json", "r.json", "-q", "--expect", "sha256:" + "0" * 64))
    assert "No space left on device" in line and "r.json" in line
    assert (case / "r.json").read_bytes() == previous
    assert partials(case) == []


def test_ctrl_c_while_writing_keeps_the_previous_report(case, monkeypatch):
    (case / "r.html").write_text("previous report")
    real_write = AtomicOutput.write

    def interrupted(self, data):
        real_write(self, data[:100])
        raise KeyboardInterrupt

    monkeypatch.setattr(AtomicOutput, "write", interrupted)
    line = one_error_line(cli("scan", "suspect.tar", "--html", "r.html", "-q"))
    assert "interrupted" in line
    assert (case / "r.html").read_text() == "previous report" and partials(case) == []


def test_outputs_are_replaced_together_or_not_at_all(case, monkeypatch):
    """The JSON is complete when the HTML fails: it still must not replace the old one."""
    (case / "r.json").write_text("old json")
    (case / "r.html").write_text("old html")
    real_write = AtomicOutput.write

    def fail_html(self, data):
        if self.option == "--html":
            raise OSError(errno.EIO, "Input/output error")
        real_write(self, data)

    monkeypatch.setattr(AtomicOutput, "write", fail_html)
    one_error_line(cli("scan", "suspect.tar", "--json", "r.json", "--html", "r.html", "-q"))
    assert (case / "r.json").read_text() == "old json" and (case / "r.html").read_text() == "old html"
    assert partials(case) == []


def test_a_written_report_is_complete_and_keeps_the_mode(case):
    (case / "r.json").write_text("old")
    os.chmod(case / "r.json", 0o640)
    assert cli("scan", "suspect.tar", "--json", "r.json", "-q").exit_code == 0
    Report.model_validate_json((case / "r.json").read_bytes())
    assert (case / "r.json").stat().st_mode & 0o777 == 0o640 and partials(case) == []


def test_sigterm_while_keeping_a_stream_leaves_no_partial_file(case):
    """The kept copy is a temporary file while the stream is read: SIGTERM removes it."""
    (case / "kept.tar").write_bytes(b"an earlier copy")
    data = SAMPLE.read_bytes()
    p = subprocess.Popen(
        [sys.executable, "-m", "forensics", "scan", "-", "--keep-input", "kept.tar", "-q"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=case,
    )
    try:
        p.stdin.write(data[: len(data) // 2])
        p.stdin.flush()
        deadline = time.monotonic() + 60
        while not partials(case):
            assert time.monotonic() < deadline and p.poll() is None, "no temporary file appeared"
            time.sleep(0.02)
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=60)
    finally:
        p.kill()
        p.stdin.close()
        p.stderr.close()
    assert p.returncode == -signal.SIGTERM
    assert partials(case) == [] and (case / "kept.tar").read_bytes() == b"an earlier copy"


# ---------------------------------------------------------------- the input checked again


@pytest.fixture
def tamper_after_reading(monkeypatch):
    """Run `change` between the analysis (the last read of the input) and the final check."""

    def install(change):
        real = forensics.pipeline.analyze

        def analyze_then_change(*a, **kw):
            report = real(*a, **kw)
            change()
            return report

        monkeypatch.setattr(forensics.pipeline, "analyze", analyze_then_change)

    return install


def _append(p: Path):
    with open(p, "ab") as fh:
        fh.write(b"\0" * 512)


def _overwrite_same_size_and_mtime(p: Path):
    """What a cheap size/mtime check alone would miss: only the second hash sees it."""
    st = p.stat()
    with open(p, "r+b") as fh:
        fh.seek(st.st_size // 2)
        b = fh.read(1)
        fh.seek(st.st_size // 2)
        fh.write(bytes([b[0] ^ 1]))
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))


def _blob(case) -> Path:
    return max((case / "layout" / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size)


CHANGES = {
    "file appended": ("suspect.tar", lambda c: _append(c / "suspect.tar")),
    "file rewritten, same size and mtime": ("suspect.tar", lambda c: _overwrite_same_size_and_mtime(c / "suspect.tar")),
    "file replaced": ("suspect.tar", lambda c: os.replace(shutil.copy(c / "suspect.tar", c / "x"), c / "suspect.tar")),
    "file added to the layout": ("layout", lambda c: (c / "layout" / "report.html").write_text("x")),
    "blob rewritten, same size and mtime": ("layout", lambda c: _overwrite_same_size_and_mtime(_blob(c))),
    "blob removed": ("layout", lambda c: _blob(c).unlink()),
}


@pytest.mark.parametrize("name", list(CHANGES))
def test_input_changed_during_analysis(case, tamper_after_reading, name):
    source, change = CHANGES[name]
    tamper_after_reading(lambda: change(case))
    r = cli("scan", source, "--json", "r.json", "--html", "r.html")
    line = one_error_line(r)
    assert "the input changed during analysis" in line and source in line
    assert "CLEAN" not in r.stdout and "TAMPERED" not in r.stdout  # no verdict
    assert not (case / "r.json").exists() and not (case / "r.html").exists() and partials(case) == []


def test_unchanged_input_is_hashed_twice(case, monkeypatch):
    """The end check really re-reads the file: its digest is computed from the file again."""
    reads = []
    real_digest = hashlib.file_digest

    def counting(fh, name):
        reads.append(os.fstat(fh.fileno()).st_ino)
        return real_digest(fh, name)

    monkeypatch.setattr(hashlib, "file_digest", counting)
    assert cli("scan", "suspect.tar", "--json", "r.json", "-q").exit_code == 0
    assert reads == [(case / "suspect.tar").stat().st_ino]
    doc = json.loads((case / "r.json").read_text())["input"]
    assert doc["sha256"] == doc["sha256_end"] == sha(case / "suspect.tar")


# ---------------------------------------------------------------- --keep-input


def test_keep_input_on_a_piped_archive(case):
    data = SAMPLE.read_bytes()
    cat = subprocess.Popen(["cat", str(SAMPLE)], stdout=subprocess.PIPE)
    r = subprocess.run(
        [sys.executable, "-m", "forensics", "scan", "-", "--keep-input", "kept.tar", "--json", "r.json"],
        stdin=cat.stdout,
        capture_output=True,
        cwd=case,
    )
    cat.stdout.close()
    cat.wait()
    assert r.returncode == 0, r.stderr
    want = "sha256:" + hashlib.sha256(data).hexdigest()
    doc = Report.model_validate_json((case / "r.json").read_bytes())
    assert sha(case / "kept.tar") == want == doc.input.sha256 == doc.input.kept.sha256
    assert doc.input.kind == "stream" and doc.input.kept.size == len(data)
    assert doc.input.kept.resolved == str(case / "kept.tar") and doc.input.sha256_end is None
    assert b"kept    kept.tar" in r.stdout
    # The kept copy is evidence like any file: scanning it gives the same result.
    again = cli("scan", "kept.tar", "--json", "again.json", "-q")
    assert again.exit_code == 0
    assert Report.model_validate_json((case / "again.json").read_bytes()).input.sha256 == want


def test_keep_input_keeps_damaged_streams_whole(case):
    """Bytes after the point where the reader stops (a cut-off gzip member) are kept too."""
    import gzip

    data = gzip.compress(SAMPLE.read_bytes())
    data = data[: len(data) // 2] + b"\xff" * 4096 + data[len(data) // 2 :]
    r = cli("scan", "-", "--keep-input", "kept.tar.gz", "--json", "r.json", "-q", stdin=data)
    assert r.exit_code == 2, r.output  # unreadable, but the report and the copy are written
    doc = Report.model_validate_json((case / "r.json").read_bytes())
    assert doc.verdict == "unreadable" and doc.input.size == len(data)
    assert (case / "kept.tar.gz").read_bytes() == data
    assert doc.input.kept.sha256 == doc.input.sha256 == "sha256:" + hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- the input block


def test_input_block_for_a_file_through_a_symlink(case):
    os.symlink("suspect.tar", "via-link.tar")
    assert cli("scan", "via-link.tar", "--json", "r.json", "--html", "r.html", "-q").exit_code == 0
    inp = Report.model_validate_json((case / "r.json").read_bytes()).input
    st = (case / "suspect.tar").stat()
    assert inp.path == "via-link.tar" and inp.resolved == str(case / "suspect.tar") and inp.kind == "file"
    assert inp.inode == st.st_ino and inp.size == st.st_size
    assert inp.sha256 == inp.sha256_end == sha(case / "suspect.tar")
    assert inp.mtime.startswith(time.strftime("%Y-%m-%dT%H:%M", time.gmtime(st.st_mtime)))
    page = (case / "r.html").read_text()
    assert str(case / "suspect.tar") in page and "read again: unchanged" in page


def test_input_block_for_a_layout_directory(case):
    before = listing(case / "layout")
    dir_mtime = (case / "layout").stat().st_mtime_ns
    assert cli("scan", "layout", "--json", "r.json", "-q").exit_code == 0
    inp = Report.model_validate_json((case / "r.json").read_bytes()).input
    assert inp.kind == "directory" and inp.sha256 is None and inp.resolved == str(case / "layout")
    assert inp.listing_sha256 and inp.listing_sha256 == inp.sha256_end
    # read-only: not a byte, a name or an mtime of the layout changed
    assert listing(case / "layout") == before and (case / "layout").stat().st_mtime_ns == dir_mtime


def test_old_results_without_the_block_still_render(case):
    assert cli("scan", "suspect.tar", "--json", "r.json", "-q").exit_code == 0
    doc = json.loads((case / "r.json").read_text())
    for k in ("kind", "resolved", "mtime", "inode", "listing_sha256", "sha256_end", "kept"):
        del doc["input"][k]
    (case / "old.json").write_text(json.dumps(doc))
    r = cli("report", "old.json", "--html", "old.html")
    assert r.exit_code == 0, r.output
    assert "Resolved path" not in (case / "old.html").read_text()


def test_a_device_or_fifo_output_is_written_not_replaced(case):
    """Renaming over /dev/null (as root) would replace the device with a file."""
    assert cli("scan", "suspect.tar", "--json", "/dev/null", "-q").exit_code == 0
    import stat as st_

    assert st_.S_ISCHR(os.stat("/dev/null").st_mode)
    os.mkfifo(case / "fifo")
    reader = subprocess.Popen(["cat", str(case / "fifo")], stdout=subprocess.PIPE)
    assert cli("scan", "suspect.tar", "--json", "fifo", "-q").exit_code == 0
    out, _ = reader.communicate(timeout=60)
    assert Report.model_validate_json(out).input.sha256 == sha(case / "suspect.tar")
    line = one_error_line(cli("scan", "-", "--keep-input", "/dev/null", stdin=SAMPLE.read_bytes()))
    assert "not a regular file" in line
