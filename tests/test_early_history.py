"""The history replay started while the input is read (forensics.history.early).

With worker processes, each layer is replayed as soon as the layers below it are read;
the report must be the one the serial pass gives, byte for byte, on every input. A spy
counts the images whose early replay was kept, so a test cannot pass by quietly
replaying everything at the end. Where the preview the replay ran on is not the final
model (other layer objects, another history, a pairing that needs every layer, a replay
that raised), the image is replayed afresh and the report is still the serial one.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hostile as H  # noqa: E402
from conftest import CORPUS  # noqa: E402
from hostile import Layer, M, Oci  # noqa: E402

from forensics.archive import parallel  # noqa: E402
from forensics.history import early as early_mod  # noqa: E402
from forensics.history.replay import ImageReplay  # noqa: E402
from forensics.pipeline import analyze  # noqa: E402
from forensics.serialize import to_json  # noqa: E402

MAKE_IMAGE = CORPUS.parent / "bench" / "make_image.py"


@pytest.fixture
def kept(monkeypatch):
    """replay_for's answers, in order: True for an early replay kept."""
    out: list[bool] = []
    real = early_mod.EarlyHistory.replay_for

    def spy(self, *a, **kw):
        r = real(self, *a, **kw)
        out.append(r is not None)
        return r

    monkeypatch.setattr(early_mod.EarlyHistory, "replay_for", spy)
    return out


def _report(path, monkeypatch, workers: int, **kw) -> str:
    monkeypatch.setenv(parallel.WORKERS_ENV, str(workers))
    doc = json.loads(to_json(analyze(str(path), command=["test"], **kw)))
    doc["analysis"] = None  # the run's own times
    return json.dumps(doc, sort_keys=True)


def _layers(n: int) -> list[Layer]:
    # Each layer adds files and replaces one of the layer below, so the replay of a layer
    # depends on the ones below it (a changed file, a deleted one, an added one).
    out = []
    for k in range(n):
        members = [M(f"d{k}/f{i:03d}", b"%d-%d" % (k, i)) for i in range(40)]
        if k:
            members += [M(f"d{k - 1}/f000", b"replaced in %d" % k), M(f"d{k - 1}/.wh.f001", b"")]
        out.append(Layer.of(H.tar_bytes(members)))
    return out


@pytest.mark.skipif(not MAKE_IMAGE.is_file(), reason="make_image.py not found")
def test_generated_images_replayed_early_and_identical(tmp_path, monkeypatch, kept):
    oci, docker = tmp_path / "g.oci.tar", tmp_path / "g.docker.tar"
    subprocess.run(
        [sys.executable, str(MAKE_IMAGE), "--size", "6M", "--layers", "5", "--compression", "gzip"]
        + ["--oci", str(oci), "--docker", str(docker), "--tmpdir", str(tmp_path), "-q"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    layout = tmp_path / "layout"
    with tarfile.open(oci) as t:
        t.extractall(layout, filter="data")
    for path in (oci, docker, layout):
        serial = _report(path, monkeypatch, 1)
        assert kept == [False], path  # one pass in one process: nothing to overlap
        kept.clear()
        assert _report(path, monkeypatch, 2) == serial, path
        assert kept == [True], path
        kept.clear()


@pytest.mark.parametrize(("sizes", "order"), [([40, 400, 4, 4000], [3, 0, 1, 2]), ([4000, 40, 4, 400], [0, 1, 2, 3])])
def test_layers_asked_for_bottom_up(tmp_path, monkeypatch, sizes, order):
    """The workers read the largest blob first (started last, it would be the pool's
    tail), then the layers in the order the replay needs them, not by size: a small
    layer read last would hold back the replay of every layer above it."""
    layers = [Layer.of(H.tar_bytes([M(f"l{k}/f{i}", b"x" * 64) for i in range(n)])) for k, n in enumerate(sizes)]
    img = tmp_path / "order.tar"
    img.write_bytes(Oci(layers=layers).tar())
    seen: list[str] = []
    real = parallel._run

    def run(job):
        seen.append(job.entry.name)
        return real(job)

    monkeypatch.setattr(parallel, "_run", run)
    monkeypatch.setattr(parallel, "_run_pool", _inline_pool(parallel._run_pool))
    monkeypatch.setenv(parallel.WORKERS_ENV, "2")
    analyze(str(img), command=["test"])
    want = [f"blobs/sha256/{H.sha(layers[k].blob).split(':')[1]}" for k in order]
    assert seen == want


def _inline_pool(real):
    """_run_pool with a pool that runs each task in this process, in submission order (so
    the spy on _run sees the order the parent asked for)."""
    import concurrent.futures as cf

    class Inline(cf.Executor):
        def __init__(self, *a, **kw) -> None:
            parallel._STATE = tuple(kw["initargs"])  # what _init sets in a worker, without its signal handler

        def submit(self, fn, *args):
            fut: cf.Future = cf.Future()
            fut.set_result(fn(*args))
            return fut

        def shutdown(self, wait=True, cancel_futures=False):
            pass

    def pool(*a, **kw):
        saved, cf.ProcessPoolExecutor = cf.ProcessPoolExecutor, Inline  # type: ignore[misc]
        try:
            return real(*a, **kw)
        finally:
            cf.ProcessPoolExecutor = saved  # type: ignore[misc]

    return pool


def _many_layers(tmp_path: Path, name: str, **kw) -> Path:
    img = tmp_path / name
    img.write_bytes(Oci(layers=_layers(5), **kw).tar())
    return img


def test_small_image_replayed_early(tmp_path, monkeypatch, kept):
    img = _many_layers(tmp_path, "five.tar")
    serial = _report(img, monkeypatch, 1)
    kept.clear()
    assert _report(img, monkeypatch, 2) == serial
    assert kept == [True]


def test_more_owners_than_layers_waits_for_every_layer(tmp_path, monkeypatch, kept):
    """Two history entries more than layers: which one owns no layer is chosen from every
    layer's files, so nothing is replayed early; the report is still the serial one."""

    def extra(cfg: dict) -> None:
        cfg["history"].insert(1, {"created_by": "COPY extra /d0/"})
        cfg["history"].insert(3, {"created_by": "RUN echo > /d1/f002"})

    img = _many_layers(tmp_path, "owners.tar", mutate_config=extra)
    serial = _report(img, monkeypatch, 1)
    kept.clear()
    par = _report(img, monkeypatch, 2)
    assert par == serial and kept == [False]
    assert "history.count-mismatch" in par


def test_replay_that_raises_is_redone(tmp_path, monkeypatch, kept):
    img = _many_layers(tmp_path, "raises.tar")
    serial = _report(img, monkeypatch, 1)
    kept.clear()
    real = ImageReplay.layer
    calls = {"n": 0}

    def once(self, li, files, captured):
        calls["n"] += 1
        if calls["n"] == 3:  # the early replay of layer 2
            raise RuntimeError("boom")
        return real(self, li, files, captured)

    monkeypatch.setattr(ImageReplay, "layer", once)
    assert _report(img, monkeypatch, 2) == serial
    assert kept == [False] and calls["n"] == 2 + 1 + 5  # the early layers, the raise, the fresh replay


def test_preview_unlike_the_model_is_not_kept(tmp_path, monkeypatch):
    """replay_for keeps a replay only for the very entries it replayed and the history it read."""
    img = _many_layers(tmp_path, "preview.tar")
    answers: dict[str, object] = {}
    real = early_mod.EarlyHistory.replay_for

    def probe(self, slot, image, captured):
        files = image.layers[2].files
        other = copy.deepcopy(image)  # equal entries, other objects
        answers["equal copies"] = real(self, slot, other, captured)
        moved = image.model_copy()
        moved.layers = list(image.layers)
        moved.layers[2] = image.layers[2].model_copy(update={"files": files[:-1] + [dataclasses.replace(files[-1])]})
        answers["one entry replaced"] = real(self, slot, moved, captured)
        said = image.model_copy(deep=False)
        said.history = [h.model_copy() for h in image.history]
        said.history[3].created_by = "RUN something else"
        answers["other history"] = real(self, slot, said, captured)
        answers["other slot"] = real(self, slot + 1, image, captured)
        r = real(self, slot, image, captured)
        answers["the model"] = r
        return r

    monkeypatch.setattr(early_mod.EarlyHistory, "replay_for", probe)
    serial = _report(img, monkeypatch, 1)
    assert _report(img, monkeypatch, 2) == serial
    assert answers["the model"] is not None
    assert [k for k, v in answers.items() if v is not None] == ["the model"]
