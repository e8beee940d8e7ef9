"""`forensics scan-many`: a generated fleet (tests/fleetdata.py) through the process pool and
Dask, resume, the layer cache (hits, planted entries), the fleet findings, SARIF and the page."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import jsonschema
import pytest
from fleetdata import FORGED_LAYER, FORGED_STEP, LATEST, make_fleet, ms
from typer.testing import CliRunner

from forensics.cli import app
from forensics.fleet.inputs import InputsError, discover

runner = CliRunner()
SCHEMA = json.loads((Path(__file__).parent / "data" / "sarif-schema-2.1.0.json").read_text())


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    return make_fleet(tmp_path_factory.mktemp("fleet") / "in")


def scan_many(*args: str, code: int | None = 1):
    result = runner.invoke(app, ["scan-many", *args, "-q"])
    if code is not None:
        assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    return result


def index(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]


def stable(lines: list[dict]) -> list[dict]:
    """The index without what belongs to the run (time, cache counters) or to --sarif."""
    return [{k: v for k, v in ln.items() if k not in ("run", "sarif")} for ln in lines]


def fleet_json(out: Path) -> dict:
    return json.loads((out / "fleet.json").read_text())


@pytest.fixture(scope="module")
def pool_out(fleet, tmp_path_factory):
    out = tmp_path_factory.mktemp("pool") / "out"
    scan_many(str(fleet.folder), "--out", str(out), "--workers", "2", "--sarif")
    return out


def test_every_input_has_its_line_in_order(fleet, pool_out):
    lines = index(pool_out)
    assert [ln["path"] for ln in lines] == [str(p) for p in fleet.archives]  # the layout folder is one input
    assert len(lines) >= 20
    by = {ln["path"]: ln for ln in lines}
    for ln in lines:
        if ln["path"] != str(fleet.broken):
            assert not ln["errors"], ln
            assert (pool_out / ln["report"]).is_file()
            assert ln["report"] == f"reports/{ln['sha256'].removeprefix('sha256:')}.json"
    broken = by[str(fleet.broken)]
    assert broken["errors"] and broken["verdict"] == "unreadable"
    assert by[str(fleet.layout)]["format"] == "oci-layout"
    # the report is the one `scan` writes for that input
    report = json.loads((pool_out / by[str(fleet.forged)]["report"]).read_text())
    assert (
        report["input"]["sha256"]
        == by[str(fleet.forged)]["sha256"]
        == "sha256:" + ms.sha256_hex(fleet.forged.read_bytes())
    )


def test_forged_build_flagged_and_named_by_the_fleet_check(fleet, pool_out):
    by = {ln["path"]: ln for ln in index(pool_out)}
    assert by[str(fleet.forged)]["verdict"] == "tampered"
    assert [ln["path"] for ln in index(pool_out) if ln["verdict"] == "tampered"] == [str(fleet.forged)]
    found = fleet_json(pool_out)["findings"]
    odd = [f for f in found if f["code"] == "compare.history-equal-content-differs"]
    assert len(odd) == 1 and odd[0]["archives"] == [str(fleet.forged)]
    f = odd[0]
    assert f["history"] == FORGED_STEP and f["layer"] == FORGED_LAYER
    assert f["evidence"]["created_by"] == ms.RUN_ADDUSER
    assert ms.RUN_ADDUSER in f["detail"] and f"step {FORGED_STEP}" in f["detail"]
    paths = f["evidence"]["paths"]
    assert {"/etc/crontabs/root", "/usr/local/bin/relayd", "/usr/local/lib/relayd.real"} <= set(paths)
    assert "/etc/passwd" not in paths  # the same in every build
    assert by[str(fleet.forged)]["fleet_findings"][0]["code"] in (
        "compare.history-equal-content-differs",
        "ref.conflict",
    )


def test_one_tag_two_digests_across_the_fleet(fleet, pool_out):
    conflicts = [f for f in fleet_json(pool_out)["findings"] if f["code"] == "ref.conflict"]
    assert [f["subject"] for f in conflicts] == [LATEST]
    assert str(fleet.forged) in conflicts[0]["archives"] and len(conflicts[0]["archives"]) == 2
    assert len(conflicts[0]["evidence"]) == 2  # two digests


def test_same_image_digest_with_other_findings_is_noted(fleet, pool_out):
    notes = fleet_json(pool_out)["notes"]
    assert len(notes) == 1
    paths = {a["path"]: a["codes"] for a in notes[0]["archives"]}
    assert paths[str(fleet.copy)] == ["blob.unreferenced"]
    assert paths[str(fleet.folder / "relay-build-001.oci.tar")] == []


def test_dask_local_gives_the_same_index(fleet, pool_out, tmp_path):
    pytest.importorskip("dask.distributed", reason="the dask extra is not installed: pip install 'forensics[dask]'")
    out = tmp_path / "dask"
    scan_many(str(fleet.folder), "--out", str(out), "--dask", "local", "--workers", "2", "--sarif")
    assert stable(index(out)) == stable(index(pool_out))
    assert fleet_json(out)["findings"] == fleet_json(pool_out)["findings"]
    assert sorted(p.name for p in out.iterdir()) == [
        "fleet.json",
        "fleet.sarif",
        "index.html",
        "index.jsonl",
        "reports",
    ]


def test_resume_skips_what_has_a_result(fleet, tmp_path):
    out = tmp_path / "out"
    some = [str(p) for p in fleet.archives[:5]]
    scan_many(*some, "--out", str(out), code=None)
    before = stable(index(out))
    stamps = {p: p.stat().st_mtime_ns for p in (out / "reports").iterdir()}
    scan_many(*some, "--out", str(out), code=None)
    stats = fleet_json(out)["stats"]
    assert stats["skipped"] == 5
    assert stable(index(out)) == before
    assert {p: p.stat().st_mtime_ns for p in (out / "reports").iterdir()} == stamps  # nothing rewritten
    # a new input is analyzed, the others still skipped; --force analyzes everything again
    scan_many(*some, str(fleet.forged), "--out", str(out))
    assert fleet_json(out)["stats"]["skipped"] == 5 and len(index(out)) == 6
    scan_many(*some, str(fleet.forged), "--out", str(out), "--force")
    assert fleet_json(out)["stats"]["skipped"] == 0


def _entries(cache: Path) -> dict[str, tuple[Path, dict]]:
    """blob digest -> (entry file, body) of every cache entry."""
    out = {}
    for p in (cache / "layers").rglob("*.json"):
        body = json.loads(p.read_bytes().partition(b"\n")[2])
        out[body["blob"]] = (p, body)
    return out


def test_cache_warm_run_hits_every_layer_and_gives_the_same_results(fleet, pool_out, tmp_path):
    cache = tmp_path / "cache"
    cold, warm = tmp_path / "cold", tmp_path / "warm"
    scan_many(str(fleet.folder), "--out", str(cold), "--cache", str(cache), "--workers", "2")
    c = fleet_json(cold)["stats"]["cache"]
    distinct = len(_entries(cache))
    # every layer read whole is looked up (those before the cut of the broken archive too); two workers
    # may both miss a layer they meet at the same time
    assert c["rejected"] == 0 and c["misses"] >= distinct and c["hits"] + c["misses"] >= fleet.layers
    scan_many(str(fleet.folder), "--out", str(warm), "--cache", str(cache), "--workers", "2")
    w = fleet_json(warm)["stats"]["cache"]
    assert w == {"hits": c["hits"] + c["misses"], "misses": 0, "rejected": 0}
    assert stable(index(warm)) == stable(index(cold)) == stable(index(pool_out))


def test_planted_cache_entries_are_detected_and_recomputed(fleet, pool_out, tmp_path):
    cache = tmp_path / "cache"
    scan_many(str(fleet.forged), "--out", str(tmp_path / "a"), "--cache", str(cache))
    forged_report = json.loads((tmp_path / "a" / index(tmp_path / "a")[0]["report"]).read_text())
    poisoned = forged_report["images"][0]["layers"][FORGED_LAYER]["digest"].removeprefix("sha256:")
    entries = _entries(cache)
    path, body = entries[poisoned]
    genuine_layer = next(b for k, (p, b) in entries.items() if k != poisoned and b["files"] and len(b["files"]) < 20)
    # 1. the body swapped for a clean-looking one, the header's sha256 left as it was
    head = path.read_bytes().partition(b"\n")[0]
    planted = dict(genuine_layer, blob=poisoned, nbytes=body["nbytes"])
    path.write_bytes(head + b"\n" + json.dumps(planted).encode())
    scan_many(str(fleet.forged), "--out", str(tmp_path / "b"), "--cache", str(cache))
    assert fleet_json(tmp_path / "b")["stats"]["cache"]["rejected"] == 1
    assert stable(index(tmp_path / "b")) == stable(index(tmp_path / "a"))  # still tampered, same findings
    assert index(tmp_path / "b")[0]["verdict"] == "tampered"
    # the bad entry was replaced by the recomputed one
    assert _entries(cache)[poisoned][1] == body
    # 2. a whole, self-consistent entry of another layer copied under this layer's name
    other = next(p for k, (p, _) in _entries(cache).items() if k != poisoned)
    shutil.copyfile(other, path)
    scan_many(str(fleet.forged), "--out", str(tmp_path / "c"), "--cache", str(cache))
    assert fleet_json(tmp_path / "c")["stats"]["cache"]["rejected"] == 1
    assert stable(index(tmp_path / "c")) == stable(index(tmp_path / "a"))
    # 3. and a torn file
    path.write_bytes(path.read_bytes()[:100])
    scan_many(str(fleet.forged), "--out", str(tmp_path / "d"), "--cache", str(cache))
    assert fleet_json(tmp_path / "d")["stats"]["cache"]["rejected"] == 1
    assert stable(index(tmp_path / "d")) == stable(index(tmp_path / "a"))
    # 4. planted by someone who recomputes the entry's own digest: a body for other bytes (it
    # says which blob it is, and that is not the one hashed), and a body of the wrong shape
    key = path.stem
    for n, forged_body in enumerate((dict(genuine_layer, nbytes=body["nbytes"]), dict(body, files=[["/x"]]))):
        raw = json.dumps(forged_body).encode()
        path.write_bytes(json.dumps({"key": key, "sha256": hashlib.sha256(raw).hexdigest()}).encode() + b"\n" + raw)
        out = tmp_path / f"e{n}"
        scan_many(str(fleet.forged), "--out", str(out), "--cache", str(cache))
        assert fleet_json(out)["stats"]["cache"]["rejected"] == 1
        assert stable(index(out)) == stable(index(tmp_path / "a"))
    # 5. a body nested past the JSON parser's recursion limit, its digest recomputed (a
    # RecursionError, not a ValueError): rejected, not a crash of the batch
    raw = b"[" * 100_000 + b"]" * 100_000
    path.write_bytes(json.dumps({"key": key, "sha256": hashlib.sha256(raw).hexdigest()}).encode() + b"\n" + raw)
    scan_many(str(fleet.forged), "--out", str(tmp_path / "f"), "--cache", str(cache))
    assert fleet_json(tmp_path / "f")["stats"]["cache"]["rejected"] == 1
    assert stable(index(tmp_path / "f")) == stable(index(tmp_path / "a"))


def test_merged_sarif_is_valid_with_one_run_per_archive(fleet, pool_out):
    doc = json.loads((pool_out / "fleet.sarif").read_text())
    errors = list(jsonschema.Draft4Validator(SCHEMA).iter_errors(doc))
    assert not errors, errors[:3]
    analyzed = [ln for ln in index(pool_out) if ln.get("sarif")]
    *runs, across = doc["runs"]
    assert len(runs) == len(analyzed) == len(fleet.archives)
    archives = [r["properties"]["archive"]["path"] for r in runs]
    assert archives == [ln["path"] for ln in analyzed]
    forged = next(r for r in runs if r["properties"]["archive"]["path"] == str(fleet.forged))
    assert {"history.unexplained-change", "file.persistence"} <= {r["ruleId"] for r in forged["results"]}
    # the findings across the fleet: the last run, each result naming its archives
    assert across["properties"] == {"fleet": True}
    odd = next(r for r in across["results"] if r["ruleId"] == "compare.history-equal-content-differs")
    assert odd["properties"]["archives"] == [str(fleet.forged)] and odd["level"] == "error"
    assert {r["ruleId"] for r in across["results"]} == {"ref.conflict", "compare.history-equal-content-differs"}


def test_fleet_page_links_every_report_and_escapes_names(fleet, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    hostile = folder / 'x"><img src=y onerror=alert(1)>\x1b[2J.tar'
    shutil.copyfile(fleet.forged, hostile)
    out = tmp_path / "out"
    scan_many(str(folder), "--out", str(out), "--html")
    page = (out / "index.html").read_text()
    assert "<img src=y" not in page and "\x1b" not in page
    assert "Content-Security-Policy" in page and "script-src &#39;sha256-" in page
    line = index(out)[0]
    assert f'href="{line["html"]}"' in page and (out / line["html"]).is_file()
    assert "tampered" in page


def test_fleet_page_shows_the_fleet_findings_and_sorts_worst_first(fleet, pool_out):
    page = (pool_out / "index.html").read_text()
    assert '<span class="sev sev-critical">critical</span> <code>compare.history-equal-content-differs</code>' in page
    assert '<span class="sev sev-medium">medium</span> <code>ref.conflict</code>' in page
    rows = page.split("<tbody>", 1)[1]
    first = rows.split("</tr>", 1)[0]
    assert str(fleet.forged) in first and "verdict-tampered" in first  # worst first, without JavaScript
    for line in index(pool_out):
        assert f'href="{line["report"]}"' in page


def test_inputs_discovery(fleet, tmp_path):
    found = discover([str(fleet.folder)])
    assert [i.path for i in found] == [str(p) for p in fleet.archives]
    assert next(i for i in found if i.path == str(fleet.layout)).kind == "directory"
    lst = tmp_path / "list.txt"
    lst.write_text(f"# two, one twice\n{fleet.forged}\n\n{fleet.layout}\n{fleet.forged}\n")
    assert [i.path for i in discover([], str(lst))] == sorted([str(fleet.forged), str(fleet.layout)])
    # a listed path that is not there is an input with its error line; the batch goes on
    lst.write_text(f"{tmp_path / 'gone.tar'}\n{fleet.forged}\n")
    out = tmp_path / "out"
    scan_many("--from", str(lst), "--out", str(out))
    lines = {ln["path"]: ln for ln in index(out)}
    assert "no such file" in lines[str(tmp_path / "gone.tar")]["errors"][0]
    assert lines[str(fleet.forged)]["verdict"] == "tampered"
    (tmp_path / "notes.txt").write_text("not an archive")
    assert discover([str(tmp_path)]) == []  # a folder searched: only what looks like an archive
    with pytest.raises(InputsError):
        discover([str(tmp_path / "missing")])


def test_usage_errors_are_one_line(fleet, tmp_path):
    r = scan_many(str(tmp_path / "missing"), "--out", str(tmp_path / "o"), code=2)
    assert r.output.count("\n") == 1 and "no such file" in r.output
    r = scan_many(str(fleet.folder), "--out", str(fleet.folder / "out"), code=2)
    assert "overlap" in r.output and not (fleet.folder / "out").exists()


def test_without_dask_the_error_names_the_extra(fleet, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "dask.distributed", None)  # import fails as if not installed
    r = scan_many(str(fleet.forged), "--out", str(tmp_path / "o"), "--dask", "local", code=2)
    assert "forensics[dask]" in r.output and r.output.count("\n") == 1


def _report(path: str, cache: Path | None, stats: dict | None = None) -> dict:
    from forensics.archive.layercache import using
    from forensics.fleet.cache import LayerCache
    from forensics.pipeline import analyze
    from forensics.serialize import to_json

    if cache is None:
        report = analyze(path)
    else:
        store = LayerCache(str(cache))
        with using(store):
            report = analyze(path)
        if stats is not None:
            stats.update(store.stats())
    doc = json.loads(to_json(report))
    doc.pop("analysis")
    return doc


@pytest.mark.parametrize("name", ["relay-forged.oci.tar", "clean.docker.tar", "clean-zstd.oci.tar"])
def test_a_cached_layer_gives_the_report_its_bytes_give(name, tmp_path, monkeypatch):
    """gzip, zstd and plain layers; a miss spilled to a file in the cache folder (a small
    in-memory limit), then a hit: the report is the one without a cache, byte for byte."""
    from forensics.archive import layercache

    monkeypatch.setattr(layercache, "SPOOL_IN_MEMORY", 4096)
    path = str(Path(__file__).resolve().parents[1] / "samples" / name)
    plain = _report(path, None)
    cold: dict = {}
    warm: dict = {}
    assert _report(path, tmp_path / "c", cold) == plain
    assert _report(path, tmp_path / "c", warm) == plain
    assert cold == {"hits": 0, "misses": 3, "rejected": 0} and warm == {"hits": 3, "misses": 0, "rejected": 0}
    assert not any((tmp_path / "c" / "tmp").iterdir())  # the spill files are gone


def test_exit_codes(fleet, tmp_path):
    scan_many(str(fleet.broken), "--out", str(tmp_path / "a"), code=2)  # could not be analyzed: its line says why
    assert index(tmp_path / "a")[0]["errors"]
    scan_many(str(fleet.broken), str(fleet.forged), "--out", str(tmp_path / "b"), code=1)  # tampered wins
    scan_many(str(fleet.layout), "--out", str(tmp_path / "c"), code=0)
    scan_many(str(fleet.forged), "--out", str(tmp_path / "d"), "--fail-on", "never", code=0)


def test_an_interrupted_run_leaves_an_index_to_resume_from(fleet, tmp_path):
    from forensics.fleet.run import Options
    from forensics.fleet.run import scan_many as run

    inputs = discover([str(fleet.folder)])
    out = tmp_path / "out"

    def stop_after_three(done: int, total: int, done_bytes: int, total_bytes: int) -> None:
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(inputs, Options(out=str(out), workers=1), stop_after_three)
    assert len(index(out)) == 3
    result = run(inputs, Options(out=str(out), workers=2))
    assert result.stats["skipped"] == 3
    assert [ln["path"] for ln in index(out)] == [str(p) for p in fleet.archives]


def test_copies_of_one_image_do_not_outvote_the_others(fleet, tmp_path):
    """Three copies of the forged build and one genuine build: four archives, but two images,
    so the genuine build is not called the odd one (counting archives, it would be)."""
    folder = tmp_path / "in"
    folder.mkdir()
    for n in range(3):
        shutil.copyfile(fleet.forged, folder / f"forged-{n}.tar")
    shutil.copyfile(fleet.folder / "relay-build-004.oci.tar", folder / "build-4.tar")
    scan_many(str(folder), "--out", str(tmp_path / "out"))
    codes = [f["code"] for f in fleet_json(tmp_path / "out")["findings"]]
    assert "compare.history-equal-content-differs" not in codes
    # two more genuine builds: three genuine images against one forged, and every copy of it is named
    for n in (5, 6):
        shutil.copyfile(fleet.folder / f"relay-build-{n:03d}.oci.tar", folder / f"build-{n}.tar")
    scan_many(str(folder), "--out", str(tmp_path / "out2"))
    odd = [f for f in fleet_json(tmp_path / "out2")["findings"] if f["code"] == "compare.history-equal-content-differs"]
    assert sorted(a for f in odd for a in f["archives"]) == [str(folder / f"forged-{n}.tar") for n in range(3)]
    assert all("4 images share this history" in f["detail"] for f in odd)


def test_other_code_or_options_never_reuse_an_entry(tmp_path, monkeypatch):
    """The key holds the options that change a layer's result and a digest of the code that
    computes it: another --verify-packages, or a development install whose code changed under
    the same version, misses."""
    from forensics.archive import layercache
    from forensics.archive.layercache import using
    from forensics.fleet.cache import LayerCache
    from forensics.pipeline import analyze

    path = str(Path(__file__).resolve().parents[1] / "samples" / "relay-forged.oci.tar")

    def stats(**kw) -> dict:
        store = LayerCache(str(tmp_path / "c"))
        with using(store):
            analyze(path, **kw)
        return store.stats()

    assert stats()["misses"] == 3 and stats()["hits"] == 3
    assert stats(verify_packages="changed") == {"hits": 0, "misses": 3, "rejected": 0}
    monkeypatch.setattr(layercache, "code_digest", lambda: "0" * 64)
    assert stats() == {"hits": 0, "misses": 3, "rejected": 0}
