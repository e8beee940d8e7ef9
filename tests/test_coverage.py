"""Coverage: each file of the final filesystem counted by what vouches for it."""

from __future__ import annotations

from hostile import M, image_tar

from forensics.pipeline import analyze
from forensics.render.html import render_html
from forensics.render.text import render_text


def _image(tmp_path):
    base = [
        M("etc/", type="dir"),
        M("etc/os-release", b"ID=test\n"),
        M("usr/", type="dir"),
        M("usr/local/", type="dir"),
        M("usr/local/bin/", type="dir"),
    ]
    step = [
        M("etc/", type="dir"),
        M("etc/app.conf", b"mode=prod\n"),  # echo: verified
        M("usr/", type="dir"),
        M("usr/local/", type="dir"),
        M("usr/local/bin/", type="dir"),
        M("usr/local/bin/app", b"\x7fELF" + b"\0" * 1020, mode=0o755),  # curl -o: unverifiable
        M("usr/local/bin/extra", b"#!/bin/sh\n"),
    ]  # nobody's
    history = [
        {"created_by": "/bin/sh -c #(nop) ADD file:4f0e9c0cb8d4 in / "},
        {
            "created_by": "/bin/sh -c echo mode=prod > /etc/app.conf && curl -fsSL -o /usr/local/bin/app "
            "https://example.invalid/app && chmod +x /usr/local/bin/app"
        },
    ]
    return analyze(str(image_tar(tmp_path, [base, step], history)))


def test_files_are_counted_by_what_vouches_for_them(tmp_path):
    report = _image(tmp_path)
    cov = report.images[0].coverage
    assert cov.files == 4 and cov.bytes == len(b"ID=test\n") + 10 + 1024 + 10
    assert (cov.verified_claim.files, cov.verified_claim.bytes) == (1, 10)  # the echoed conf
    assert cov.unexplained.files == 1 and cov.unexplained.bytes == 10  # /usr/local/bin/extra
    # the downloaded binary (history[1]) and the base rootfs (history[0]) are unverifiable
    assert cov.unverifiable.files == 2
    gap = {g.history: g for g in cov.gaps}
    assert gap[1].files == 1 and gap[1].bytes == 1024
    assert any("history[1]" in a and "forensics diff" in a for a in cov.advice)


def test_coverage_is_rendered_in_terminal_and_html(tmp_path):
    report = _image(tmp_path)
    text = render_text(report)
    assert "coverage  4 files" in text and "unexplained 1" in text
    html = render_html(report)
    assert "Coverage: what vouches for the files" in html and "consistency, not proof" in html
