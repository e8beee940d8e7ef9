"""Nothing from the image reaches a terminal or an HTML page raw, and JSON keeps it exact.

The archives are built in the test (tests/hostile.py) with names, labels, tags and
history lines an attacker would choose: OSC sequences (clipboard, window title),
CR, a newline followed by a fake verdict line, a right-to-left override, lone
surrogates.
"""

from __future__ import annotations

import io
import json
import random
import re
import sys
import unicodedata
from pathlib import Path

from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hostile as H  # noqa: E402
from hostile import Layer, M, Oci  # noqa: E402

from forensics.cli import app  # noqa: E402
from forensics.history.shellwords import has_below  # noqa: E402
from forensics.models import ConfigSummary, Report  # noqa: E402
from forensics.render.progress import Progress  # noqa: E402
from forensics.render.safe import visible, visible_html  # noqa: E402
from forensics.serialize import from_json, to_json  # noqa: E402

FAKE = "CLEAN: every digest verified; nothing at medium severity or above"
NAMES = [f"x\n{FAKE}", "a\rb", "t\x1b]52;c;aGk=\x07", "\x1b]0;pwned\x07", "run\u202egnp.sh", "iso\u2067late"]
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
VERDICT = re.compile(r"^(CLEAN|SUSPICIOUS|TAMPERED|UNREADABLE):", re.M)


def _hostile_image(tmp_path: Path, name: str = "a.tar", extra: str = "") -> Path:
    tar = H.tar_bytes(
        [M(n + extra, b"#!/bin/sh\n", mode=0o4755) for n in NAMES] + [M("link", type="symlink", link=f"..\n{FAKE}")]
    )

    def cfg(c: dict) -> None:
        c["config"]["Labels"] = {"l\x1b[31m": "v\rX\u202e"}
        c["history"][0]["created_by"] = f"RUN echo\x1b]0;t\x07 \n{FAKE}"

    p = tmp_path / name
    p.write_bytes(Oci(layers=[Layer.of(tar)], mutate_config=cfg, ref="evil\x1b]0;x\x07:1").tar())
    return p


def _assert_safe_terminal(text: str) -> None:
    assert not RAW.search(text.replace("\n", "")), repr(RAW.search(text.replace("\n", "")))
    assert len(VERDICT.findall(text)) <= 1, text  # only our own first line is a verdict
    assert "\\x1b]52" in text or "\\x1b]0" in text or "\\u202e" in text  # the evidence is shown, escaped


def test_visible_escapes_controls_bidi_and_surrogates() -> None:
    assert (
        visible("a\nb\rc\td\x1b[0m\x07\x85\u202e\u2066\ufeff\ud800\U000e0041")
        == "a\\nb\\rc\\td\\x1b[0m\\x07\\x85\\u202e\\u2066\\ufeff\\ud800\\U000e0041"
    )
    assert visible("plain é 日本 \U0001f600") == "plain é 日本 \U0001f600"
    assert visible_html("a\nb\tc\rd") == "a\nb\tc\\rd"  # white space stays white space in HTML


def test_visible_covers_every_invisible_category() -> None:
    """The table in render/safe.py against this Python's Unicode database."""
    missed = [
        hex(cp)
        for cp in range(0x110000)
        if unicodedata.category(chr(cp)) in ("Cc", "Cf", "Cs", "Zl", "Zp") and visible(chr(cp)) == chr(cp)
    ]
    assert not missed, missed[:20]


def test_scan_history_and_errors_print_nothing_raw(tmp_path: Path) -> None:
    p = _hostile_image(tmp_path)
    runner = CliRunner()
    out = ["--json", str(tmp_path / "r.json"), "--html", str(tmp_path / "r.html")]
    scan = runner.invoke(app, ["scan", str(p), *out], env={"COLUMNS": "1000"})
    assert scan.exit_code in (0, 1), scan.output
    _assert_safe_terminal(scan.output)
    assert "\\u202egnp.sh" in scan.output and f"x\\n{FAKE}" in scan.output
    # Wrapped to a narrow terminal, the attacker's text still never starts a line of its own.
    for width in ("40", "57", "80"):
        for command in (["scan", str(p)], ["history", str(p)]):
            narrow = runner.invoke(app, command, env={"COLUMNS": width})
            _assert_safe_terminal(narrow.output)
            assert not [line for line in narrow.output.splitlines()[1:] if line.startswith(("CLEAN", "x\\n"))]
    hist = runner.invoke(app, ["history", str(p)])
    assert hist.exit_code in (0, 1), hist.output
    _assert_safe_terminal(hist.output)
    # JSON keeps the exact values
    doc = json.loads((tmp_path / "r.json").read_text())
    paths = {f["path"] for f in doc["images"][0]["layers"][0]["files"]}
    assert {"/" + n for n in NAMES} <= paths
    assert doc["images"][0]["config"]["labels"] == {"l\x1b[31m": "v\rX\u202e"}
    # HTML shows the same visible form, no raw control or bidi character
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert not RAW.search(html), repr(RAW.search(html))
    assert "run\\u202egnp.sh" in html and "\\x1b]52" in html


def test_diff_prints_nothing_raw(tmp_path: Path) -> None:
    a = _hostile_image(tmp_path, "a.tar")
    b = _hostile_image(tmp_path, "b.tar", extra="\x1b[2J")
    result = CliRunner().invoke(app, ["diff", str(a), str(b), "--html", str(tmp_path / "d.html")])
    assert result.exit_code in (0, 1), result.output
    _assert_safe_terminal(result.output)
    assert not RAW.search((tmp_path / "d.html").read_text(encoding="utf-8"))


def test_error_message_is_one_visible_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["scan", str(tmp_path / f"no\x1b]0;x\x07\n{FAKE}")])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("forensics: error: "), result.output
    assert not RAW.search(result.output.replace("\n", ""))


def test_progress_label_is_visible() -> None:
    err = io.StringIO()
    saved, sys.stderr = sys.stderr, err
    try:
        p = Progress(f"scanning x\x1b]0;t\x07\n{FAKE}", enabled=True)
        p(10, 100)
        p.stage("comparing\x1b[2J")
    finally:
        sys.stderr = saved
    assert "\x1b" not in err.getvalue() and "\n" not in err.getvalue()


def test_lone_surrogates_json_exact_and_html_complete(tmp_path: Path) -> None:
    doc = Oci().config_doc()
    doc["config"]["Labels"] = {"x": "@@", "@@k": "v"}
    data = H.jbytes(doc).replace(b"@@", b"\\ud800")
    p = tmp_path / "s.tar"
    p.write_bytes(Oci(config_bytes=data).tar())
    out, html = tmp_path / "s.json", tmp_path / "s.html"
    result = CliRunner().invoke(app, ["scan", str(p), "--json", str(out), "--html", str(html)])
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")  # valid UTF-8: the surrogate is written as its escape
    assert json.loads(text)["images"][0]["config"]["labels"] == {"x": "\ud800", "\ud800k": "v"}
    assert from_json(Report, text).images[0].config.labels == {"x": "\ud800", "\ud800k": "v"}
    page = html.read_text(encoding="utf-8")
    assert page.rstrip().endswith("</html>") and "\\ud800" in page
    report = CliRunner().invoke(app, ["report", str(out)])  # the saved JSON reads back
    assert report.exit_code == 0, report.output


def test_to_json_is_pydantic_output_when_it_can_be() -> None:
    c = ConfigSummary(labels={"a": "b"}, env=["x=1"])
    assert to_json(c) == c.model_dump_json(indent=1)
    odd = ConfigSummary(labels={"\udcff": "\ud800"}, env=["a\udc80b"])
    assert from_json(ConfigSummary, to_json(odd)) == odd
    assert to_json(odd).isascii() or "\\ud800" in to_json(odd)


def test_has_below_agrees_with_building_the_parents() -> None:
    rng = random.Random(5)
    paths = {"/" + "/".join(rng.choice("ab") for _ in range(rng.randrange(1, 6))) for _ in range(60)}
    parents = set()
    for q in paths:
        while q not in ("/", ""):
            q = q.rsplit("/", 1)[0] or "/"
            parents.add(q)
    ordered = sorted(paths)
    for d in {"/a", "/b", "/a/b", "/a/a/a", "/b/b/b/b", "/", "/c", "/a/b/a/b/a"} | paths:
        assert has_below(ordered, d) == (d in parents), d
