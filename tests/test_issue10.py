"""Issue 10 ("evidence an investigator can cite, and a CLI a newcomer can follow"): the
items no other test module holds, each on real inputs through the real command line."""

from __future__ import annotations

import errno
import gzip
import html as html_lib
import json
import os
import re
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.hostile import Layer, M, Oci, image_tar, sha, tar_bytes
from tests.test_explain import assert_tour_reproduces, needs_tools, tour_checks

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
FORGED = SAMPLES / "relay-forged.oci.tar"
GENUINE = SAMPLES / "relay-genuine.oci.tar"


def run(*args, env: dict | None = None, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "forensics", *map(str, args)],
        capture_output=True,
        input=stdin,
        env={**os.environ, **(env or {})},
    )


# ---------------------------------------------------------------- scripts/test.sh (item 8)


def _stub(path: Path, body: str) -> None:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.mark.parametrize(
    ("env", "installs"),
    [({}, False), ({"FORENSICS_BROWSER": "1"}, True), ({"CI": "true"}, True), ({"FORENSICS_BROWSER": "0"}, False)],
)
def test_test_script_installs_chromium_only_when_asked(tmp_path, env, installs):
    """The real script, as root, on a host with apt-get and no chromium: apt-get runs only
    with CI or FORENSICS_BROWSER=1. The venv's python is a stub that records its calls."""
    bin_, venv = tmp_path / "bin", tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    bin_.mkdir()
    log = tmp_path / "calls"
    _stub(venv / "bin" / "python", f'echo "python $*" >> {log}\n')
    _stub(bin_ / "apt-get", f'echo "apt-get $*" >> {log}\n')
    _stub(bin_ / "id", "echo 0\n")
    _stub(bin_ / "dirname", 'case "$1" in */*) echo "${1%/*}";; *) echo .;; esac\n')
    clean = {k: v for k, v in os.environ.items() if k not in ("CI", "FORENSICS_BROWSER")}
    cp = subprocess.run(
        ["/bin/bash", str(ROOT / "scripts" / "test.sh"), "-k", "nothing"],
        env={**clean, **env, "PATH": str(bin_), "VENV": str(venv)},
        capture_output=True,
        text=True,
    )
    assert cp.returncode == 0, cp.stderr
    calls = log.read_text().splitlines()
    assert calls[-1] == "python -m pytest -q -p no:cacheprovider -k nothing"
    assert any(c.startswith("apt-get install") and "chromium" in c for c in calls) is installs, calls
    assert ("installing chromium" in cp.stderr) is installs


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    command = "bash scripts/test.sh"
    assert f"```sh\n{command}\n```" in readme
    lines = [ln for ln in (ROOT / ".ci" / "run").read_text().splitlines() if ln and not ln.startswith("#")]
    assert lines[-1] == f"exec {command}"


def test_browser_test_skips_saying_how_to_run_it(tmp_path):
    """No chromium on PATH: the browser test skips, and its reason says how to run it;
    when asked for (FORENSICS_BROWSER=1) it fails instead of passing unseen."""
    empty = tmp_path / "empty"
    empty.mkdir()
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", "tests/test_html_browser.py"]
    clean = {k: v for k, v in os.environ.items() if k not in ("CI", "FORENSICS_BROWSER")}
    cp = subprocess.run(cmd, cwd=ROOT, env={**clean, "PATH": str(empty)}, capture_output=True, text=True)
    assert cp.returncode == 0 and "passed" not in cp.stdout, cp.stdout
    assert "skipped" in cp.stdout and "FORENSICS_BROWSER=1 bash scripts/test.sh" in cp.stdout
    cp = subprocess.run(
        cmd, cwd=ROOT, env={**clean, "PATH": str(empty), "FORENSICS_BROWSER": "1"}, capture_output=True, text=True
    )
    assert cp.returncode == 1 and "chromium is not installed" in cp.stdout


# ---------------------------------------------------------------- explain ARCHIVE (teaching)


@needs_tools
@pytest.mark.parametrize("outer", ["none", "gzip"])
def test_tour_of_duplicate_member_names_selects_the_copy_analyzed(tmp_path, outer):
    """A name stored twice: `tar -xO NAME` writes both copies, so the tour's command names
    the copy with --occurrence=N, the last one (what extraction keeps and the analysis
    read), and running it yields the digest the tour states; a second index.json that
    differs is the one the tour hashes."""
    oci = Oci()
    _, _, index = oci.documents()
    second = json.loads(index)
    second["annotations"] = {"note": "the second copy"}
    blob = oci.layers[0].blob
    dup = Oci(
        extra_members=[M("index.json", json.dumps(second).encode()), M("blobs/sha256/" + sha(blob)[7:], blob)]
    ).tar()
    name = "dup.tar" if outer == "none" else "dup.tar.gz"
    (tmp_path / name).write_bytes(dup if outer == "none" else gzip.compress(dup))
    out = assert_tour_reproduces(name, tmp_path, at_least=5)
    commands = [c for c, _ in tour_checks(out)]
    assert sum("--occurrence=2" in c and "index.json" in c for c in commands) == 1
    assert sum("--occurrence=2" in c and sha(blob)[7:] in c for c in commands) == 2  # blob and diff_id
    assert all("--occurrence" not in c for c in commands if "index.json" not in c and sha(blob)[7:] not in c)
    assert sha(json.dumps(second).encode()) in out and sha(index) not in out


TRUTH = json.loads((SAMPLES / "relay-forged.truth.json").read_text())
MANIFEST = TRUTH["manifest_digest"]
CONFIG = TRUTH["config_digest"]
REF = TRUTH["refs"][0]


def one_line(cp: subprocess.CompletedProcess) -> str:
    """A usage or input error: exit 2, exactly one line on stderr, no traceback."""
    err = cp.stderr.decode()
    assert cp.returncode == 2, (cp.returncode, err, cp.stdout[:300])
    assert err.count("\n") == 1 and err.startswith("forensics: error: "), err
    assert "Traceback" not in err and "validation error" not in err.lower()
    return err


# ---------------------------------------------------------------- 1. pins


@pytest.mark.parametrize(
    "pin",
    [
        "sha256:4f",  # a short prefix
        "sha256:4f...",  # the README's own placeholder
        MANIFEST[:19],  # the first 12 hex digits, as `docker images` shows them
        MANIFEST.upper(),
        "sha256:" + MANIFEST[7:].upper(),  # uppercase hex
        MANIFEST[7:],  # no algorithm
        "sha512:" + "a" * 128,
        f"{REF}@{MANIFEST[:20]}",
        f"@{MANIFEST}",
    ],
)
def test_a_malformed_pin_is_a_usage_error_not_tampering(pin):
    """Bad usage is never evidence: exit 2, one line saying what a digest looks like, no
    report (not even the JSON asked for) and no ref.pin-mismatch."""
    cp = run("scan", FORGED, "--expect", pin, "--json", "-", "--fail-on", "never")
    err = one_line(cp)
    assert "64 lowercase hex digits" in err and "sha256:" in err
    assert cp.stdout == b"" and b"pin-mismatch" not in cp.stdout


def test_a_matching_pin_is_stated_in_terminal_json_and_html(tmp_path):
    html = tmp_path / "r.html"
    cp = run("scan", FORGED, "--expect", MANIFEST, "--expect", f"{REF}@{CONFIG}", "--html", html, "--fail-on", "never")
    assert cp.returncode == 0, cp.stderr
    out = " ".join(cp.stdout.decode().split())
    assert f"pinned: manifest digest {MANIFEST} matches" in out
    doc = json.loads(run("scan", FORGED, "--expect", MANIFEST, "--json", "-", "--fail-on", "never").stdout)
    [pin] = doc["pins"]
    assert pin["matched"] and pin["status"] == "matched" and pin["against"] == "manifest digest"
    assert pin["detail"].startswith(f"pinned: manifest digest {MANIFEST} matches")
    assert not [f for f in doc["findings"] if f["code"] == "ref.pin-mismatch"]
    page = html.read_text()
    assert re.search(r'class="pin-line pin-ok">pinned: manifest digest ' + MANIFEST + " matches", page)
    assert "pinned: image ID (config digest) " + CONFIG + " matches for " + REF in page


def test_a_named_pin_needs_the_named_ref_to_point_at_it():
    genuine = json.loads((SAMPLES / "relay-genuine.truth.json").read_text())["manifest_digest"]
    for pin in (f"{REF}@{genuine}", f"other.example/app:1@{MANIFEST}"):
        cp = run("scan", FORGED, "--expect", pin, "--json", "-", "-q")
        assert cp.returncode == 1, pin
        doc = json.loads(cp.stdout)
        [f] = [f for f in doc["findings"] if f["code"] == "ref.pin-mismatch"]
        assert f["severity"] == "critical" and pin in f["detail"]
        assert doc["pins"][0]["matched"] is False


def test_expect_file_is_a_deploy_lock(tmp_path):
    """One pin a line, comments and blank lines allowed; every ref of the archive that the
    file names must match; pins for other refs do not apply; a bad line is exit 2 naming
    FILE:LINE; a file none of whose pins applies is a mismatch."""
    lock = tmp_path / "deploy.lock"
    lock.write_text(f"# deployed 2026-01\n\n{REF}@{MANIFEST}\nother.example/app:1@sha256:{'0' * 64}\n")
    doc = json.loads(run("scan", FORGED, "--expect-file", lock, "--json", "-", "--fail-on", "never").stdout)
    assert [(p["status"], p["source"]) for p in doc["pins"]] == [("matched", f"{lock}:3"), ("absent", f"{lock}:4")]
    assert not [f for f in doc["findings"] if f["code"] == "ref.pin-mismatch"]
    lock.write_text(f"{REF}@sha256:{'0' * 64}\n")
    cp = run("scan", FORGED, "--expect-file", lock, "--json", "-", "-q", "--fail-on", "critical")
    assert cp.returncode == 1
    [f] = [f for f in json.loads(cp.stdout)["findings"] if f["code"] == "ref.pin-mismatch"]
    assert f"{lock}:1" in f["detail"] and MANIFEST in f["detail"]
    lock.write_text(f"other.example/app:1@{MANIFEST}\n")
    cp = run("scan", FORGED, "--expect-file", lock, "--json", "-", "-q")
    assert cp.returncode == 1 and "none of the 1 pin(s)" in cp.stdout.decode()
    lock.write_text(f"{REF}@{MANIFEST}\n{MANIFEST[:30]}\n")
    assert f"{lock}:2" in one_line(run("scan", FORGED, "--expect-file", lock))
    assert "no such file" in one_line(run("scan", FORGED, "--expect-file", tmp_path / "missing.lock"))


# ---------------------------------------------------------------- 2. not an image


def _not_images(tmp_path: Path) -> dict[str, Path]:
    plain = tmp_path / "plain.tar"
    with tarfile.open(plain, "w") as t:
        t.add(ROOT / "README.md", "README.md")
    gz = tmp_path / "export.tar.gz"
    with tarfile.open(gz, "w:gz") as t:
        t.add(ROOT / "docs", "docs")
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.txt").write_text("hello\n")
    with open(folder / "sub" / "big.bin", "wb") as fh:
        fh.truncate(256 << 20)  # sparse: free to make, 256 MiB to read
    zeros = tmp_path / "zeros.img"
    with open(zeros, "wb") as fh:
        fh.truncate(64 << 20)
    return {"plain": plain, "gz": gz, "folder": folder, "zeros": zeros}


@pytest.mark.parametrize("quiet", [False, True])
def test_not_an_image_is_one_line_with_or_without_quiet(tmp_path, quiet):
    found = {
        "plain": "found a tar of 1 entry (README.md)",
        "gz": "found a gzip-compressed tar of ",
        "folder": "found a directory of 2 entries (notes.txt, sub/big.bin)",
        "zeros": f"found {64 << 20} bytes with no tar entry in them",
    }
    for name, path in _not_images(tmp_path).items():
        cp = run("scan", path, *(["-q"] if quiet else []))
        err = one_line(cp)
        assert cp.stdout == b"", (name, cp.stdout[:200])
        assert f"{path}: not an image archive: {found[name]}" in err, err
        assert "expected a `docker save` tar or an OCI image layout" in err


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="reads /proc/self/io (Linux)")
def test_scan_dir_decides_from_the_layout_files_before_reading_blobs(tmp_path):
    """A folder without index.json or manifest.json is answered from its listing: its
    256 MiB file is never read (the process's read count stays far below it)."""
    folder = _not_images(tmp_path)["folder"]
    code = (
        "import sys\nfrom forensics.cli import app\n"
        "try:\n    app(['scan', sys.argv[1], '-q'])\nexcept SystemExit as e:\n    code = e.code\n"
        "io = dict(l.split(': ') for l in open('/proc/self/io').read().splitlines())\n"
        "print(code, io['rchar'])\n"
    )
    cp = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True)
    status, rchar = cp.stdout.split()
    assert status == "2" and "not an image archive" in cp.stderr
    assert int(rchar) < 64 << 20, f"{rchar} bytes read"
    # a layout is still read whole: the same folder with an index.json is analyzed
    (folder / "index.json").write_text('{"schemaVersion": 2, "manifests": []}')
    cp = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True)
    assert int(cp.stdout.split()[1]) > 256 << 20


# ---------------------------------------------------------------- 3. outputs checked first


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs a FIFO")
@pytest.mark.parametrize(
    ("outputs", "says"),
    [
        (["--json", "-", "--html", "-"], "--json - and --html -: both would go to stdout"),
        (["--html", "-", "--sarif", "-"], "both would go to stdout"),
        (["--json", "{d}/r.out", "--html", "{d}/r.out"], "the same file"),
        (["--json", "{d}/no/such/dir/r.json"], "no such directory"),
        (["--html", "{d}"], "is a directory"),
    ],
)
def test_outputs_are_refused_before_the_input_is_read(tmp_path, outputs, says):
    """The input is a FIFO nobody writes: reading it would hang, so an answer at all proves
    the outputs were judged first."""
    fifo = tmp_path / "input.tar"
    os.mkfifo(fifo)
    args = [a.format(d=tmp_path) for a in outputs]
    cp = subprocess.run([sys.executable, "-m", "forensics", "scan", str(fifo), *args], capture_output=True, timeout=60)
    assert says in one_line(cp), cp.stderr


def test_dash_is_for_one_output_on_diff_too():
    cp = run("diff", GENUINE, FORGED, "--json", "-", "--html", "-")
    assert "both would go to stdout" in one_line(cp)


def test_a_write_failing_at_the_end_still_gives_the_verdict(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from forensics.cli import app
    from forensics.evidence import AtomicOutput

    def no_space(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(AtomicOutput, "write", no_space)
    out = tmp_path / "r.json"
    quiet = CliRunner().invoke(app, ["scan", str(FORGED), "--json", str(out), "-q"])
    [line] = quiet.stderr.splitlines()
    assert quiet.exit_code == 2 and "No space left on device" in line
    assert "the analysis finished: TAMPERED" in line and not out.exists()
    loud = CliRunner().invoke(app, ["scan", str(FORGED), "--json", str(out)])
    assert loud.exit_code == 2 and loud.stdout.startswith("TAMPERED") and "F-" in loud.stdout
    assert "No space left on device" in loud.stderr


# ---------------------------------------------------------------- --fail-on


@pytest.mark.parametrize("value", ["HIGH", "High", "high", "CRITICAL", "Never"])
def test_fail_on_takes_any_case(value):
    expected = 0 if value.lower() == "never" else 1
    assert run("scan", FORGED, "-q", "--fail-on", value).returncode == expected
    assert run("history", FORGED, "--fail-on", value).returncode == expected


def test_fail_on_a_wrong_value_names_the_choices():
    cp = run("scan", FORGED, "--fail-on", "severe")
    err = cp.stderr.decode()
    assert cp.returncode == 2 and "Traceback" not in err and "pydantic" not in err
    assert all(c in err for c in ("critical", "high", "medium", "low", "info", "never"))


# ---------------------------------------------------------------- 4. the terminal


def _out(*args, columns: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    if columns is not None:
        env["COLUMNS"] = columns
    cp = subprocess.run([sys.executable, "-m", "forensics", *map(str, args)], capture_output=True, env=env)
    assert cp.returncode in (0, 1), cp.stderr
    return cp.stdout.decode()


@pytest.mark.parametrize("command", [["scan", FORGED], ["diff", GENUINE, FORGED]])
def test_scan_and_diff_wrap_at_words_to_the_width(command):
    """80 columns: every line fits, except a digest or path that cannot be broken, alone on
    its line; every word of the unwrapped output is still whole; piped without COLUMNS the
    width is 80 too; the verdict is the first line."""
    wide, narrow = _out(*command, columns="1000"), _out(*command, columns="80")
    assert _out(*command, columns=None) == narrow
    for line in narrow.splitlines():
        assert len(line) <= 80 or len(line.split()) == 1, line
    words = set(narrow.split())
    assert [w for w in wide.split() if w not in words] == []
    first = narrow.splitlines()[0]
    assert first.startswith("TAMPERED" if command[0] == "scan" else "CONTENT DIFFERS"), first


def test_history_fits_80_columns_and_cuts_nothing_silently(tmp_path):
    """history at 80 columns: the verdict first, no line wider than 80, a value too long for
    its column continues with a mark (↩) and joins back to itself, and a cell cut short ends
    in [+]; piped without COLUMNS, 80 columns too (it used 120)."""
    out = _out("history", FORGED, columns="80")
    assert _out("history", FORGED, columns=None) == out
    assert out.startswith("TAMPERED")
    assert max(len(line) for line in out.splitlines()) <= 80
    assert "\u21a9" in out
    # the left column, pieces joined where they carry the mark, holds each step's whole command
    left = "".join(
        line.split("\u2502")[0].strip().removesuffix("\u21a9") for line in out.splitlines() if "\u2502" in line
    )
    for step in TRUTH["history"]:
        assert "".join(step["created_by"].split()) in "".join(left.split()), step["created_by"]
    long_cmd = "RUN " + " && ".join(f"echo step-{i:03d}-{'x' * 20}" for i in range(60))
    img = image_tar(tmp_path, [[M("srv/a", b"1")]], [{"created_by": long_cmd}])
    cut = _out("history", img, columns="80")
    assert max(len(line) for line in cut.splitlines()) <= 80
    assert "[+]" in cut and "step-059" not in cut
    assert "step-059" in _out("history", img, "--all", columns="80")


def test_finding_details_carry_full_digests_and_ids_everywhere(tmp_path):
    """The digests in a finding's detail are whole in the terminal (never 12 hex digits);
    each finding has the same identifier in the terminal, the JSON and the HTML, and the
    same input gives the same identifiers on another run."""
    html = tmp_path / "r.html"
    term = _out("scan", FORGED, "--html", html, columns="80")
    assert not re.findall(r"sha256:[0-9a-f]{1,63}(?![0-9a-f])", term)
    doc = json.loads(_out("scan", FORGED, "--json", "-", columns="80"))
    again = json.loads(_out("scan", FORGED, "--json", "-", columns="80"))
    ids = [f["id"] for f in doc["findings"]]
    assert ids == [f["id"] for f in again["findings"]] and len(set(ids)) == len(ids) == 3
    page = html.read_text()
    for f in doc["findings"]:
        assert re.fullmatch(r"F-[0-9a-f]{10}", f["id"])
        assert f["id"] in term
        assert f'id="{f["id"]}"' in page and f'href="#{f["id"]}"' in page
        for digest in re.findall(r"sha256:[0-9a-f]{64}", f["detail"]):
            assert digest in term
    relayd = next(f for f in doc["findings"] if f["code"] == "file.binary-replaced")
    assert TRUTH["layers"][2]["diff_id"] not in relayd["detail"]  # the layer's ids are its own fields
    assert "sha256:5c60638742d128651212d7fa88d47b54c687bc4353b9c88353324dbcaf5f7f26" in term


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_progress_bar_fits_80_columns_and_clears_itself(tmp_path):
    """On a real terminal (a pty, 80 columns): every state of the progress line fits in
    79 columns, and once the scan is done the line is blank again: replaying the bytes
    like a terminal leaves no 'scanning' line on the screen."""
    import pty

    big = tmp_path / "big.tar"
    blob = os.urandom(24 << 20)
    big.write_bytes(
        Oci(layers=[Layer.of(tar_bytes([M("srv/blob", blob), M("srv/x", b"1")]))]).tar()
    )  # large enough for several updates
    pid, fd = pty.fork()
    if pid == 0:  # the child: stdout and stderr are the pty
        os.environ["COLUMNS"] = "80"
        os.execv(sys.executable, [sys.executable, "-m", "forensics", "scan", str(big), "--fail-on", "never"])
    raw = b""
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except OSError:
            break
        if not chunk:
            break
        raw += chunk
    os.waitpid(pid, 0)
    text = raw.decode("utf-8", "replace").replace("\r\n", "\n")
    assert "scanning big.tar" in text, text[:300]
    # each state of the line between carriage returns
    for piece in re.split(r"[\r\n]", text):
        if "scanning" in piece:
            assert len(piece.rstrip()) <= 79, piece
    # a terminal's screen after the run: \r goes back to column 0, text overwrites
    screen: list[list[str]] = [[]]
    col = 0
    for ch in text:
        if ch == "\n":
            screen.append([])
            col = 0
        elif ch == "\r":
            col = 0
        else:
            row = screen[-1]
            row.extend(" " * (col + 1 - len(row)))
            row[col] = ch
            col += 1
    lines = ["".join(r).rstrip() for r in screen]
    assert not [line for line in lines if "scanning" in line], lines[:3]
    # the screen is exactly the summary a pipe gets: nothing of the bar is left over
    piped = _out("scan", big, "--fail-on", "never", columns="80").splitlines()
    assert [line for line in lines if line] == [line.rstrip() for line in piped if line]


# ---------------------------------------------------------------- 5. the HTML as evidence


@pytest.fixture(scope="module")
def forged_html():
    from forensics.pipeline import analyze
    from forensics.render.html import render_html

    report = analyze(str(FORGED), command=["forensics", "scan", str(FORGED)])
    return report, render_html(report)


def _text(fragment: str) -> str:
    """What a reader sees (and copies) of an HTML fragment: tags dropped, entities decoded."""
    return html_lib.unescape(re.sub(r"<[^>]+>", "", fragment))


def test_html_modified_file_shows_both_sides(forged_html):
    """The replaced relayd: type, size, mode, owner and full sha256 before and after, in the
    poisoned step's table (49,152 -> 200 bytes, not only 200) and in its finding's card."""
    report, page = forged_html
    elf, script = (
        "sha256:5c60638742d128651212d7fa88d47b54c687bc4353b9c88353324dbcaf5f7f26",
        "sha256:5fbba5b019a8a85b27e61ffbd455487ca0b38c4a3d0e0c2a33983fd966acad24",
    )
    row = re.search(r'<tr class="change-modified"><td>~</td><td>/usr/local/bin/relayd</td>.*?</tr>', page).group()
    cells = re.findall(r"<td>(.*?)</td>(?=<td>|</tr>)", row)
    before, after = _text(cells[-2]), _text(cells[-1])
    assert before.startswith("file 49,152 bytes 0755 -rwxr-xr-x 0:0") and before.endswith(elf[7:])
    assert after.startswith("file 200 bytes 0755 -rwxr-xr-x 0:0") and after.endswith(script[7:])
    [f] = [f for f in report.findings if f.code == "file.binary-replaced"]
    card = page[page.index(f'<div class="finding" id="{f.id}">') :]
    card = _text(card[: card.index("</ul>")])
    assert f"elf, 49,152 bytes, {elf}" in card and f"script file, 200 bytes, {script}" in card


def test_html_layer_findings_name_the_layer_by_digest_and_diff_id(forged_html):
    report, page = forged_html
    scoped = [f for f in report.findings if f.layer is not None]
    assert scoped
    for f in scoped:
        layer = report.images[f.image or 0].layers[f.layer]
        card = page[page.index(f'<div class="finding" id="{f.id}">') :]
        card = _text(card[: card.index("</ul>")])
        assert f"layer digest {layer.digest}" in card and f"layer diff_id {layer.diff_id}" in card


def test_html_digests_are_whole_selectable_and_break_only_between_groups(forged_html):
    """Every digest the page shows reads (and copies) whole; the markup lets it wrap only
    between groups of 16 digits, and it is selected as one unit (user-select: all)."""
    report, page = forged_html
    text = _text(re.sub(r"<(script|style|svg)\b.*?</\1>", "", page, flags=re.S))
    assert not re.findall(r"sha256:[0-9a-f]{1,63}(?![0-9a-f])", text)
    # the drawing's boxes are too small for 64 digits: each short label stands next to the
    # full digest, in its node's title (shown on hover, read by a screen reader)
    labels = 0
    for node in re.findall(r'<g class="node[^"]*">.*?</g>', page, flags=re.S):
        for short in re.findall(r"sha256:([0-9a-f]{6,63})\u2026", node):
            labels += 1
            assert re.search(rf"<title>[^<]*sha256:{short}[0-9a-f]{{{64 - len(short)}}}", node), node
    for dg in re.findall(r'<span class="dg">(.*?)</span></span>', page):
        parts = re.findall(r"<span>([^<]*)</span>", dg + "</span>")
        assert "".join(parts).removeprefix("sha256:").isalnum() and len("".join(parts).removeprefix("sha256:")) == 64
        assert all(len(p.removeprefix("sha256:")) == 16 for p in parts), parts
        assert dg.count("<wbr>") == len(parts) - 1
    assert labels >= 5
    css = (ROOT / "reports" / "assets" / "report.css").read_text()
    assert re.search(r"\.dg[^{]*\{[^}]*font-family: var\(--mono\)[^}]*user-select: all", css)
    for layer in report.images[0].layers:
        assert layer.digest in text and layer.diff_id in text


def test_html_finding_ids_are_stable_anchors(forged_html):
    from forensics.pipeline import analyze

    report, page = forged_html
    again = analyze(str(FORGED), command=["other", "command"])
    assert [f.id for f in again.findings] == [f.id for f in report.findings]
    for f in report.findings:
        assert page.count(f'id="{f.id}"') == 1 and f'href="#{f.id}"' in page


# ---------------------------------------------------------------- case record


def test_case_record_in_json_and_html(tmp_path):
    html = tmp_path / "r.html"
    args = ["--case", "IR-2291", "--examiner", "J. Doe", "--note", "pulled from the registry mirror"]
    cp = run("scan", FORGED, *args, "--json", "-", "--html", html, "--fail-on", "never")
    assert cp.returncode == 0, cp.stderr
    case = json.loads(cp.stdout)["case"]
    assert (case["case"], case["examiner"], case["note"]) == ("IR-2291", "J. Doe", "pulled from the registry mirror")
    from forensics import __version__

    assert case["tool_version"] == __version__ and case["host"] and case["python"]
    assert {"pydantic", "typer", "jinja2"} <= set(case["dependencies"])
    assert case["command"][:3] == ["forensics", "scan", str(FORGED)] and "IR-2291" in case["command"]
    block = html.read_text()
    block = _text(block[block.index('<h3 id="case">') : block.index("</table>", block.index('<h3 id="case">'))])
    for want in (
        "IR-2291",
        "J. Doe",
        "pulled from the registry mirror",
        case["host"],
        f"pydantic {case['dependencies']['pydantic']}",
    ):
        assert want in block, want
    assert "--examiner 'J. Doe'" in block


# ---------------------------------------------------------------- 8. the vocabulary link


def test_readme_links_the_vocabulary_inside_the_clone():
    readme = (ROOT / "README.md").read_text()
    assert "](docs/findings.md)" in readme and "../shared/findings.md" not in readme
    assert (ROOT / "docs" / "findings.md").is_file()
    assert "sha256:4f..." not in readme  # the placeholder a reader copied into --expect


def test_outputs_are_refused_before_stdin_is_read():
    """On stdin the stream would be gone by the end: `-` twice is refused while the pipe is
    still open and unread (a read would wait for it forever)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "forensics", "scan", "-", "--json", "-", "--html", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        proc.wait(timeout=60)  # stdin stays open and unwritten meanwhile
    finally:
        proc.stdin.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read().decode()
    proc.stdout.close()
    proc.stderr.close()
    assert proc.returncode == 2 and "both would go to stdout" in err and err.count("\n") == 1


# ---------------------------------------------------------------- teaching behind each finding


def test_each_finding_in_the_html_carries_its_teaching_entry(forged_html):
    """The text of `forensics explain CODE` is behind each finding's group in the HTML: why,
    the attack, each by-hand command as code (not a Python dict's repr), false positives."""
    from forensics.findings import explain_code

    report, page = forged_html
    for code in {f.code for f in report.findings}:
        t = explain_code(code)
        start = page.index(f"About {code}: why it matters")
        block = page[start : page.index("</details>", start)]
        text = _text(block)
        runs = [html_lib.unescape(r) for r in re.findall(r'<pre class="run"><code>(.*?)</code></pre>', block)]
        assert t["why"] in text and t["attack"] in text
        for step in t["confirm"]:
            assert step["say"] in text
            assert step["run"] in runs
        for fp in t["false_positives"]:
            assert fp in text
        assert "{'say'" not in text and "'run':" not in text
