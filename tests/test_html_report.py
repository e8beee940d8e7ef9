"""The HTML report: structure, self-containment, escaping, size, and `forensics report`.

Renders every bundled sample and a few corpus archives through the real
pipeline and checks the page with html.parser; builds a hostile archive whose
history, file names, labels and tag carry script payloads; renders a report of
100,000 files; round-trips `scan --json` through `forensics report --html`.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import re
import subprocess
import sys
import tarfile
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from forensics.models import (
    Analysis,
    Blob,
    ConfigSummary,
    FileEntry,
    Finding,
    HistoryEntry,
    Image,
    InputInfo,
    Layer,
    PathChange,
    Report,
    Severity,
    StepAnalysis,
    StepInstruction,
    ToolInfo,
)
from forensics.pipeline import analyze
from forensics.render.html import render_html, script_hash

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted((ROOT / "samples").glob("*.tar"))
CORPUS = Path("/work/shared/corpus")
CORPUS_PICKS = [
    "attack/relay-forged.oci.tar",
    "attack/relay-forged.docker.tar",
    "integrity/layer-blob-missing.oci.tar",
    "integrity/diffid-wrong.oci.tar",
    "integrity/config-bytes-changed.docker.tar",
    "integrity/extra-unreferenced-blob.oci.tar",
    "integrity/manifest-json-bad.docker.tar",
    "integrity/container-export-rootfs.tar",
    "integrity/layer-symlink-escape.oci.tar",
    "clean/lantern-agent-multiarch.oci.tar",
    "clean/lantern-and-base-dockerd.docker.tar",
    "clean/lantern-ctr-export.docker-oci.tar",
]
SECTION_IDS = ["summary", "evidence", "findings", "images", "ledger", "history", "files", "structure", "appendix"]

XSS_SCRIPT = "<script>alert(1)</script>"
XSS_IMG = '"><img src=x onerror=alert(1)>'
XSS_SVG = "<svg onload=alert(1)>"
PAYLOADS = [XSS_SCRIPT, XSS_IMG]


# ---------------------------------------------------------------- page parsing


class Page(HTMLParser):
    """Everything the checks need from one HTML document."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.ids: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self.text_parts: list[str] = []
        self.csp: str | None = None
        self._in: str | None = None
        self._buf: list[str] = []
        self.feed(html)
        self.close()
        self.text = "".join(self.text_parts)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if a.get("id"):
            self.ids.append(a["id"])
        if tag == "meta" and (a.get("http-equiv") or "").lower() == "content-security-policy":
            self.csp = a.get("content")
        if tag in ("script", "style"):
            self._in, self._buf = tag, []

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag):
        if tag == self._in:
            (self.scripts if tag == "script" else self.styles).append("".join(self._buf))
            self._in = None

    def handle_data(self, data):
        if self._in:
            self._buf.append(data)
        else:
            self.text_parts.append(data)

    def attr_values(self):
        for tag, attrs in self.tags:
            for k, v in attrs.items():
                yield tag, k, v or ""


def check_self_contained(html: str) -> Page:
    page = Page(html)
    # one inline script, allowed by its hash and nothing else
    assert len(page.scripts) == 1, "exactly one inline script"
    script_tags = [a for t, a in page.tags if t == "script"]
    assert len(script_tags) == 1 and "src" not in script_tags[0]
    assert page.csp, "Content-Security-Policy meta tag"
    directives = {d.split()[0]: d.split()[1:] for d in page.csp.split(";") if d.strip()}
    assert directives["default-src"] == ["'none'"]
    assert directives["script-src"] == [f"'{script_hash(page.scripts[0])}'"]
    assert set(directives["img-src"]) <= {"data:"}
    assert directives["style-src"] == ["'unsafe-inline'"]
    # the CSP meta must come before anything that could load
    first = [t for t, _ in page.tags[:6]]
    assert "meta" in first[:4]
    # nothing loads from anywhere
    for tag, key, value in page.attr_values():
        if key in ("src", "href", "xlink:href", "action", "formaction", "poster", "srcset", "data", "background"):
            assert value.startswith("#") or value.startswith("data:"), f"<{tag} {key}={value!r}>"
        assert not key.startswith("on"), f"event handler attribute <{tag} {key}>"
        if "url(" in value:
            assert all(u.startswith("#") for u in re.findall(r"url\(([^)]*)\)", value)), value
    forbidden = {
        "img",
        "iframe",
        "object",
        "embed",
        "base",
        "form",
        "link",
        "audio",
        "video",
        "source",
        "frame",
        "image",
        "use",
        "foreignobject",
    }
    found = {t for t, _ in page.tags} & forbidden
    # the one <link> allowed is the data: favicon that stops the browser asking for /favicon.ico
    links = [a for t, a in page.tags if t == "link"]
    assert all(a.get("href") == "data:," and a.get("rel") == "icon" for a in links)
    assert found <= {"link"}, f"forbidden elements {found}"
    for css in page.styles:
        assert "url(" not in css and "@import" not in css
    assert "http://" not in page.scripts[0] and "https://" not in page.scripts[0]
    return page


def check_report_page(report: Report, html: str) -> Page:
    page = check_self_contained(html)
    for sid in SECTION_IDS:
        assert sid in page.ids, f"section #{sid}"
    assert len(page.ids) == len(set(page.ids)), "ids are unique"
    for f in report.findings:
        assert f.code in page.text
    for n, f in enumerate(report.findings[:200]):
        # the stable identifier is the anchor (a finding without one keeps its position)
        assert (f.id or f"finding-{n}") in page.ids
        if f.id:
            assert f.id in page.text
    for b in report.blobs:
        if b.digest:
            assert b.digest in page.text, f"blob {b.name} digest shown"
    for img in report.images:
        for layer in img.layers:
            assert f"layer-{img.index}-{layer.index}" in page.ids
        for h in img.history:
            assert f"step-{img.index}-{h.index}" in page.ids
            if h.created_by:
                assert h.created_by in page.text
        if img.manifest_digest and any("/" in r or ":" in r for r in img.refs):
            assert f"@{img.manifest_digest}" in page.text, "pin line"
    assert report.verdict.upper() in html
    return page


def corpus_or_skip(rel: str) -> Path:
    p = CORPUS / rel
    if not p.exists():
        pytest.skip(f"corpus file {p} is absent (the shared corpus is not mounted here)")
    return p


# ---------------------------------------------------------------- real archives


@pytest.mark.parametrize("archive", SAMPLES, ids=[p.name for p in SAMPLES])
def test_sample_reports(archive: Path):
    report = analyze(str(archive))
    html = render_html(report)
    page = check_report_page(report, html)
    assert archive.name in page.text
    if report.input.sha256:
        assert report.input.sha256 in page.text


@pytest.mark.parametrize("rel", CORPUS_PICKS)
def test_corpus_reports(rel: str):
    archive = corpus_or_skip(rel)
    report = analyze(str(archive))
    html = render_html(report)
    check_report_page(report, html)


def test_forged_sample_names_the_poisoned_step():
    report = analyze(str(ROOT / "samples" / "relay-forged.oci.tar"))
    html = render_html(report)
    page = Page(html)
    step = next((h for h in report.images[0].history if h.analysis and h.analysis.unexplained), None)
    if step is None and not report.findings:
        pytest.skip("history analysis not available in this build")
    # the summary names it, and its article is marked
    assert re.search(r'<article class="step step-poisoned" id="step-0-3"', html)
    assert 'href="#step-0-3"' in html
    assert "/usr/local/lib/relayd.real" in page.text
    assert "TAMPERED" in html or "SUSPICIOUS" in html


def test_unreadable_and_broken_archives_render():
    for rel in ("integrity/container-export-rootfs.tar", "integrity/layer-blob-missing.oci.tar"):
        archive = corpus_or_skip(rel)
        report = analyze(str(archive))
        html = render_html(report)
        check_report_page(report, html)
        if rel.endswith("layer-blob-missing.oci.tar"):
            svg = html[html.index("<svg") : html.index("</svg>")]
            assert "edge-broken" in svg and "MISSING" in svg and "blob missing" in svg
            assert "layer (missing)" in html


# ---------------------------------------------------------------- hostile archive


def _tar(entries: list[tuple[str, bytes | None, dict]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data, extra in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = 1_700_000_000
            ti.uname = ti.gname = ""
            if data is None:
                ti.type = tarfile.DIRTYPE
                ti.mode = 0o755
                tf.addfile(ti)
            else:
                ti.size = len(data)
                ti.mode = extra.get("mode", 0o644)
                tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def build_hostile_archive(path: Path, payloads: list[str] = PAYLOADS) -> Path:
    """An OCI archive whose attacker-controlled strings all carry the payloads; every digest is right."""
    p1, p2 = payloads[0], payloads[-1]
    layer0_tar = _tar(
        [
            ("bin/", None, {}),
            ("bin/sh", b"\x7fELF" + b"\0" * 60, {"mode": 0o755}),
            ("etc/", None, {}),
            ("etc/motd", b"hello\n", {}),
        ]
    )
    layer1_tar = _tar(
        [
            ("srv/", None, {}),
            (f"srv/{p1}", b"#!/bin/sh\necho pwned\n", {"mode": 0o4755}),
            (f"srv/{p2}", b"x\n", {}),
            (f"srv/{XSS_SVG}", b"y\n", {}),
        ]
    )
    layers = [gzip.compress(t, mtime=0) for t in (layer0_tar, layer1_tar)]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {
            "Env": [f"PAYLOAD={p1}"],
            "Entrypoint": ["/bin/sh", "-c", p2],
            "Labels": {"org.example.title": p1, f"x{p2}": p2},
            "User": p2,
            "WorkingDir": f"/srv/{p1}",
        },
        "rootfs": {"type": "layers", "diff_ids": [_digest(t) for t in (layer0_tar, layer1_tar)]},
        "history": [
            {"created": "2024-01-01T00:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file:abc in / "},
            {
                "created": "2024-01-01T00:00:01Z",
                "created_by": f"/bin/sh -c echo '{p1}' && touch '{p2}'",
                "comment": p1,
                "author": p2,
            },
        ],
    }
    config_bytes = json.dumps(config).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": _digest(config_bytes),
            "size": len(config_bytes),
        },
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": _digest(b), "size": len(b)}
            for b in layers
        ],
        "annotations": {"org.example.note": p1},
    }
    manifest_bytes = json.dumps(manifest).encode()
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": _digest(manifest_bytes),
                "size": len(manifest_bytes),
                "annotations": {"org.opencontainers.image.ref.name": f"evil/app:{p1}{p2}"},
            }
        ],
    }
    entries: list[tuple[str, bytes | None, dict]] = [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}', {})]
    for blob in (*layers, config_bytes, manifest_bytes):
        entries.append((f"blobs/sha256/{hashlib.sha256(blob).hexdigest()}", blob, {}))
    entries.append(("index.json", json.dumps(index).encode(), {}))
    path.write_bytes(_tar(entries))
    return path


def assert_payloads_escaped(html: str, page: Page, payloads: list[str] = PAYLOADS) -> None:
    for p in payloads + [XSS_SVG]:
        assert p not in html, f"raw payload {p!r} in the HTML source"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert len(page.scripts) == 1
    assert not [t for t, _ in page.tags if t == "img"]
    assert sum(1 for t, _ in page.tags if t == "svg") == 1
    for tag, key, _ in page.attr_values():
        assert not key.startswith("on"), f"<{tag} {key}>"


def test_payloads_in_an_archive_render_as_text(tmp_path: Path):
    archive = build_hostile_archive(tmp_path / "hostile.oci.tar")
    report = analyze(str(archive))
    assert report.images and report.verdict != "unreadable"
    img = report.images[0]
    # the payloads really reached the report through every attacker-controlled channel
    assert any(XSS_SCRIPT in r and XSS_IMG in r for r in img.refs), img.refs
    assert any(XSS_SCRIPT in (h.created_by or "") for h in img.history)
    assert img.config.labels["org.example.title"] == XSS_SCRIPT
    assert any(XSS_SCRIPT in f.path for layer in img.layers for f in layer.files)
    html = render_html(report)
    page = check_report_page(report, html)
    assert_payloads_escaped(html, page)
    # shown as text where an investigator looks for them
    for p in PAYLOADS:
        assert f"/srv/{p}" in page.text  # file listing
        assert f"evil/app:{XSS_SCRIPT}{XSS_IMG}" in page.text  # tag, image card and SVG title
    assert f"org.example.title={XSS_SCRIPT}" in page.text  # label
    svg = html[html.index("<svg") : html.index("</svg>")]
    assert "&lt;script&gt;" in svg and "<script" not in svg


def test_payloads_in_a_constructed_report_everywhere():
    """Every string field of the model that the page shows carries a payload."""
    p = XSS_SCRIPT + XSS_IMG
    report = _report_with_analysis(payload=p)
    html = render_html(report)
    page = check_report_page(report, html)
    assert_payloads_escaped(html, page)
    assert page.text.count(p) >= 10


# ---------------------------------------------------------------- constructed reports (history analysis)


def _report_with_analysis(payload: str = "", n_files: int = 3) -> Report:
    files0 = [
        FileEntry(path="/bin", type="dir", mode=0o755, uid=0, gid=0, size=0, mtime=0),
        FileEntry(
            path="/bin/busybox", type="file", mode=0o755, uid=0, gid=0, size=10, mtime=0, sha256="a" * 64, kind="elf"
        ),
    ]
    files1 = [
        FileEntry(
            path=f"/usr/local/bin/relayd{payload}",
            type="file",
            mode=0o755,
            uid=0,
            gid=0,
            size=200,
            mtime=0,
            sha256="b" * 64,
            kind="script",
        ),
        FileEntry(
            path="/usr/bin/sudo", type="file", mode=0o4755, uid=0, gid=0, size=99, mtime=0, sha256="c" * 64, kind="elf"
        ),
        FileEntry(
            path=f"/etc/crontabs/root{payload}",
            type="file",
            mode=0o600,
            uid=0,
            gid=0,
            size=40,
            mtime=0,
            sha256="d" * 64,
            kind="data",
        ),
    ]
    files1 += [
        FileEntry(path=f"/var/lib/relay/f{i}", type="file", mode=0o644, uid=100, gid=101, size=i, mtime=0)
        for i in range(n_files)
    ]
    d0, d1, cfg, man = ("sha256:" + c * 64 for c in "0123")
    layers = [
        Layer(
            index=0,
            digest=d0,
            size=100,
            media_type="application/vnd.oci.image.layer.v1.tar+gzip",
            path_in_archive=f"blobs/sha256/{d0[7:]}",
            present=True,
            actual_sha256=d0,
            actual_size=100,
            compression="gzip",
            diff_id="sha256:" + "e" * 64,
            declared_diff_id="sha256:" + "e" * 64,
            entries=len(files0),
            files=files0,
        ),
        Layer(
            index=1,
            digest=d1,
            size=200,
            media_type="application/vnd.oci.image.layer.v1.tar+gzip",
            path_in_archive=f"blobs/sha256/{d1[7:]}",
            present=True,
            actual_sha256=d1,
            actual_size=200,
            compression="gzip",
            diff_id="sha256:" + "f" * 64,
            declared_diff_id="sha256:" + "f" * 64,
            entries=len(files1),
            files=files1,
        ),
    ]
    findings = [
        Finding(
            code="file.binary-replaced",
            severity=Severity.critical,
            subject=f"layer[1]:/usr/local/bin/relayd{payload}",
            detail=f"ELF replaced by a script {payload}",
            image=0,
            layer=1,
            history=2,
            path=f"/usr/local/bin/relayd{payload}",
            evidence={"before": {"kind": "elf"}, "after": payload or "script"},
        ),
        Finding(
            code="history.unexplained-change",
            severity=Severity.high,
            subject="history[2]",
            detail=f"layer 1 changes paths its history line does not account for {payload}",
            image=0,
            layer=1,
            history=2,
            evidence={"paths": [f"/etc/crontabs/root{payload}"]},
        ),
        Finding(
            code="blob.unreferenced",
            severity=Severity.low,
            subject="sha256:" + "9" * 64,
            detail="nothing refers to it",
            digest="sha256:" + "9" * 64,
            entry="blobs/sha256/" + "9" * 64,
        ),
    ]
    explained = [
        PathChange(
            path=f"/var/lib/relay/f{i}", change="added", type="file", size=i, explained_by="RUN mkdir /var/lib/relay"
        )
        for i in range(n_files)
    ]
    unexplained = [
        PathChange(
            path=f"/usr/local/bin/relayd{payload}",
            change="modified",
            type="file",
            what=["content", "type"],
            sha256="b" * 64,
            before_sha256="5" * 64,
        ),
        PathChange(path=f"/etc/crontabs/root{payload}", change="added", type="file", size=40, sha256="d" * 64),
        PathChange(path="/usr/local/lib/relayd.real", change="deleted", type="file"),
    ]
    history = [
        HistoryEntry(
            index=0,
            created="2024-01-01T00:00:00Z",
            created_by="/bin/sh -c #(nop) ADD file:abc in / ",
            layer_index=0,
            analysis=StepAnalysis(
                instruction=StepInstruction(kind="ADD", builder="classic", dest="/"),
                counts={"added": 2, "modified": 0, "deleted": 0, "explained": 2, "unexplained": 0},
                explained=[PathChange(path="/bin/busybox", change="added", type="file", explained_by="ADD to /")],
            ),
        ),
        HistoryEntry(
            index=1,
            created="2024-01-01T00:00:01Z",
            created_by=f"/bin/sh -c #(nop) USER {payload}",
            empty_layer=True,
            analysis=StepAnalysis(instruction=StepInstruction(kind="USER", builder="classic", metadata_only=True)),
        ),
        HistoryEntry(
            index=2,
            created="2024-01-01T00:00:02Z",
            created_by=f"/bin/sh -c adduser relay && mkdir /var/lib/relay {payload}",
            layer_index=1,
            comment=payload or None,
            author=payload or None,
            analysis=StepAnalysis(
                instruction=StepInstruction(kind="RUN", builder="classic", args=payload),
                counts={"added": n_files + 1, "modified": 1, "deleted": 1, "explained": n_files, "unexplained": 3},
                explained=explained,
                unexplained=unexplained,
                findings=[0, 1],
            ),
        ),
    ]
    img = Image(
        index=0,
        refs=[f"example/relay:5.2{payload}"],
        platform="linux/amd64",
        manifest_digest=man,
        manifest_media_type="application/vnd.oci.image.manifest.v1+json",
        config_digest=cfg,
        declared_config_digest=cfg,
        config=ConfigSummary(
            os="linux",
            architecture="amd64",
            user=payload or None,
            entrypoint=["/usr/local/bin/relayd", payload],
            env=[f"A={payload}"],
            labels={f"k{payload}": f"v{payload}"},
            exposed_ports=["2525/tcp"],
        ),
        layers=layers,
        history=history,
        manifest_text=json.dumps({"note": payload, "schemaVersion": 2}),
        config_text="{not json " + payload,
    )
    blobs = [
        Blob(name=f"blobs/sha256/{d[7:]}", digest=d, size=s, kind=k, declared_digest=d)
        for d, s, k in ((d0, 100, "layer"), (d1, 200, "layer"), (cfg, 300, "config"), (man, 400, "manifest"))
    ]
    blobs += [
        Blob(name="index.json", digest="sha256:" + "8" * 64, size=10, kind="metadata"),
        Blob(
            name="blobs/sha256/" + "9" * 64,
            digest="sha256:" + "9" * 64,
            size=5,
            kind="unreferenced",
            declared_digest="sha256:" + "9" * 64,
        ),
    ]
    return Report(
        tool=ToolInfo(version="0.1.0"),
        input=InputInfo(path=f"/cases/{payload or 'x'}.tar", size=12345, sha256="sha256:" + "7" * 64),
        format="oci-archive",
        verdict="tampered",
        images=[img],
        blobs=blobs,
        findings=findings,
        analysis=Analysis(
            started="2024-01-01T00:00:00Z",
            finished="2024-01-01T00:00:01Z",
            seconds=1.0,
            command=["forensics", "scan", f"{payload or 'x'}.tar"],
        ),
    )


def _article(html: str, anchor: str) -> str:
    start = html.index(f'id="{anchor}"')
    start = html.rindex("<article", 0, start)
    return html[start : html.index("</article>", start)]


def test_history_analysis_rendering():
    report = _report_with_analysis()
    html = render_html(report)
    check_report_page(report, html)
    poisoned = _article(html, "step-0-2")
    assert poisoned.startswith('<article class="step step-poisoned"')
    assert "Poisoned step" in poisoned
    # counts, then the unexplained paths in their own table, then the explained ones folded
    assert poisoned.index('class="counts"') < poisoned.index("unexplained-table") < poisoned.index("<details")
    unexplained_part = poisoned[poisoned.index("unexplained-table") : poisoned.index("<details")]
    for path in ("/usr/local/bin/relayd", "/etc/crontabs/root", "/usr/local/lib/relayd.real"):
        assert path in unexplained_part
    assert "/var/lib/relay/f0" not in unexplained_part
    assert "/var/lib/relay/f0" in poisoned[poisoned.index("<details") :]
    assert 'href="#finding-0"' in poisoned and 'href="#finding-1"' in poisoned
    ok = _article(html, "step-0-0")
    assert ok.startswith('<article class="step step-ok"')
    assert "step-poisoned" not in _article(html, "step-0-1")
    # the overview table row and the summary alert point at it
    assert re.search(r'<tr class="step-poisoned">\s*<td class="num"><a href="#step-0-2">', html)
    summary = html[html.index('id="summary"') : html.index('id="evidence"')]
    assert 'href="#step-0-2"' in summary and "Suspect history steps" in summary
    # the flagged path rows stand out in the file listing, and setuid is visible
    files = html[html.index('id="files"') : html.index('id="structure"')]
    assert re.search(r"<tr class=\"flagged\"><td>/etc/crontabs/root", files)
    assert "4755 -rwsr-xr-x" in files
    assert '<details class="layer flagged" id="layer-0-1" open>' in files
    # the appendix shows JSON re-indented and non-JSON raw
    appendix = html[html.index('id="appendix"') :]
    assert "JSON, re-indented" in appendix and "raw (not valid JSON)" in appendix
    assert "note&#34;: &#34;&#34;" in appendix or '"note": ""' in Page(appendix).text


def test_history_without_analysis_renders():
    report = _report_with_analysis()
    for h in report.images[0].history:
        h.analysis = None
    report.findings = [f for f in report.findings if f.history is None]
    html = render_html(report)
    check_report_page(report, html)
    assert "The history analysis is not part of this result" in html
    assert "step step-poisoned" not in html and '<tr class="step-poisoned">' not in html
    assert _article(html, "step-0-2").startswith('<article class="step step-unanalyzed"')
    assert _article(html, "step-0-1").startswith('<article class="step step-empty"')


def test_layer_finding_without_history_marks_the_owning_step():
    report = _report_with_analysis()
    for h in report.images[0].history:
        h.analysis = None
    report.findings = [
        Finding(
            code="layer.diffid-mismatch",
            severity=Severity.critical,
            subject="layer[1]",
            detail="diff_id differs",
            image=0,
            layer=1,
            digest=report.images[0].layers[1].digest,
            entry=report.images[0].layers[1].path_in_archive,
            evidence={"declared": "sha256:" + "f" * 64, "actual": "sha256:" + "a" * 64},
        )
    ]
    html = render_html(report)
    check_report_page(report, html)
    assert _article(html, "step-0-2").startswith('<article class="step step-poisoned"')
    ledger = html[html.index('id="ledger"') : html.index('id="files"')]
    rows = re.findall(r"<tr class=\"state-[a-z]+\">.*?</tr>", ledger, flags=re.S)
    row = next(r for r in rows if report.images[0].layers[1].path_in_archive in r)
    assert 'class="state-fail"' in row and "mark-fail" in row and "layer.diffid-mismatch" in row
    assert "expected (declared)" in html and "actual (computed)" in html


# ---------------------------------------------------------------- size


def _big_report(n_files: int, n_layers: int) -> Report:
    report = _report_with_analysis(n_files=0)
    img = report.images[0]
    per = n_files // n_layers
    layers, history = [], []
    for li in range(n_layers):
        files = [
            FileEntry(
                path=f"/usr/share/data/pkg{li}/sub{i % 97}/file-{i:06d}.dat",
                type="file",
                mode=0o644,
                uid=0,
                gid=0,
                size=i,
                mtime=1_700_000_000.0,
                sha256=hashlib.sha256(b"%d" % i).hexdigest(),
                kind="data",
            )
            for i in range(per)
        ]
        d = "sha256:" + hashlib.sha256(b"layer%d" % li).hexdigest()
        layers.append(
            Layer(
                index=li,
                digest=d,
                size=per * 100,
                media_type="application/vnd.oci.image.layer.v1.tar+gzip",
                path_in_archive=f"blobs/sha256/{d[7:]}",
                present=True,
                actual_sha256=d,
                actual_size=per * 100,
                compression="gzip",
                entries=per,
                files=files,
            )
        )
        changes = [
            PathChange(
                path=f.path,
                change="added",
                type="file",
                size=f.size,
                sha256=f.sha256,
                explained_by="COPY . /usr/share/data",
            )
            for f in files
        ]
        history.append(
            HistoryEntry(
                index=li,
                created_by=f"COPY data{li} /usr/share/data # buildkit",
                layer_index=li,
                analysis=StepAnalysis(
                    instruction=StepInstruction(kind="COPY", builder="buildkit"),
                    counts={"added": per, "explained": per, "unexplained": 0},
                    explained=changes,
                ),
            )
        )
    img.layers, img.history = layers, history
    report.findings = []
    report.blobs = [
        Blob(name=x.path_in_archive, digest=x.digest, size=x.size, kind="layer", declared_digest=x.digest)
        for x in layers
    ]
    return report


@pytest.mark.parametrize("n_layers", [1, 100])
def test_100k_files_report_stays_small(n_layers: int):
    report = _big_report(100_000, n_layers)
    assert sum(len(x.files) for x in report.images[0].layers) == 100_000
    t0 = time.monotonic()
    html = render_html(report)
    seconds = time.monotonic() - t0
    size = len(html.encode("utf-8"))
    print(f"\n100k files in {n_layers} layer(s): {size / 1e6:.2f} MB HTML in {seconds:.2f} s")
    assert size < 15_000_000
    assert seconds < 30
    check_self_contained(html)
    assert "of 100,000 entries" in html or "of 100000 entries" in html or n_layers > 1
    assert "are not listed here; the JSON result lists them all" in html


# ---------------------------------------------------------------- the `forensics report` command


def _forensics(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "forensics", *args], input=stdin, capture_output=True, timeout=120)


def test_report_command_round_trip(tmp_path: Path):
    sample = ROOT / "samples" / "relay-forged.oci.tar"
    j, a, b = tmp_path / "scan.json", tmp_path / "scan.html", tmp_path / "report.html"
    scan = _forensics("scan", str(sample), "--json", str(j), "--html", str(a), "-q")
    assert scan.returncode in (0, 1), scan.stderr
    rep = _forensics("report", str(j), "--html", str(b))
    assert rep.returncode == 0, rep.stderr
    html_a, html_b = a.read_text(encoding="utf-8"), b.read_text(encoding="utf-8")
    pa, pb = Page(html_a), Page(html_b)
    assert pa.ids == pb.ids
    for sid in SECTION_IDS:
        assert sid in pb.ids
    assert html_a == html_b, "the saved result renders exactly like the live scan"
    check_report_page(Report.model_validate_json(j.read_text()), html_b)
    # stdout
    out = _forensics("report", str(j), "--html", "-")
    assert out.returncode == 0 and out.stdout.decode("utf-8") == html_b
    # stdin
    inp = _forensics("report", "-", "--html", "-", stdin=j.read_bytes())
    assert inp.returncode == 0 and inp.stdout.decode("utf-8") == html_b


@pytest.mark.parametrize("content", [b"{", b'{"a": 1}', b"[]", b"\xff\xfe\x00garbage", b""])
def test_report_command_rejects_non_reports(tmp_path: Path, content: bytes):
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    out_file = tmp_path / "out.html"
    r = _forensics("report", str(bad), "--html", str(out_file))
    assert r.returncode == 2
    err = r.stderr.decode()
    assert err.startswith("forensics: error:") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert not out_file.exists()


def test_report_command_missing_file(tmp_path: Path):
    r = _forensics("report", str(tmp_path / "nope.json"), "--html", str(tmp_path / "x.html"))
    assert r.returncode == 2 and "no such file" in r.stderr.decode() and "Traceback" not in r.stderr.decode()


def test_csp_hash_matches_script():
    html = render_html(_report_with_analysis())
    page = Page(html)
    digest = base64.b64encode(hashlib.sha256(page.scripts[0].encode()).digest()).decode()
    assert f"'sha256-{digest}'" in page.csp


# ---------------------------------------------------------------- templates and view model hygiene


def test_templates_escape_everything():
    from markupsafe import Markup

    from forensics.render.html import _env
    from forensics.render.view import build_view

    env = _env()
    assert env.autoescape is True
    templates = sorted((ROOT / "reports" / "templates").glob("*.j2"))
    assert templates
    for t in templates:
        text = t.read_text()
        assert "|safe" not in text.replace(" ", ""), t.name
        assert "autoescape false" not in text and "Markup" not in text, t.name
    # the only Markup in the view model is the SVG built by forensics.render.svg
    found = []

    def walk(obj, where):
        if isinstance(obj, Markup):
            found.append(where)
        elif isinstance(obj, dict):
            for k, v in obj.items():
                walk(v, f"{where}.{k}")
        elif isinstance(obj, (list, tuple)):
            for i, v in enumerate(obj):
                walk(v, f"{where}[{i}]")

    walk(build_view(_report_with_analysis(payload=XSS_SCRIPT)), "v")
    assert found == ["v.svg"]


def test_odd_values_from_a_hand_edited_json_render():
    """`forensics report` renders whatever validates; odd values must not crash the page."""
    report = _report_with_analysis()
    img = report.images[0]
    img.history[2].analysis.findings = [-1, 99, 0]
    img.history[0].layer_index = 42
    img.layers[0].files[0].mode = -1
    img.layers[1].present = False
    img.layers[1].actual_size = None
    img.config = None
    img.refs = []
    img.manifest_digest = None
    report.findings.append(
        Finding(
            code="not.a-known-code",
            severity=Severity.info,
            subject="",
            detail="",
            image=7,
            layer=3,
            history=9,
            evidence={"x": [1, {"y": None}]},
        )
    )
    report.analysis = None
    html = render_html(report)
    page = check_self_contained(html)
    for sid in SECTION_IDS:
        assert sid in page.ids
    assert "No explanation recorded for this code." in page.text
