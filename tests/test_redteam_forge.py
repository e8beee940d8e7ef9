"""The red-team forger (bench/redteam/forge.py) must leave every digest consistent:
otherwise the set would measure digest checks, not the history analysis."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from forensics.pipeline import analyze

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench" / "redteam"))

import forge  # noqa: E402

STRUCTURAL = ("archive.", "blob.", "layer.", "ref.", "history.count-mismatch", "history.empty-layer-mismatch")


def _config_member(root: Path) -> str:
    if (root / "index.json").exists():
        index = json.loads((root / "index.json").read_text())
        man = json.loads((root / "blobs/sha256" / index["manifests"][0]["digest"].split(":")[1]).read_bytes())
        return "blobs/sha256/" + man["config"]["digest"].split(":")[1]
    return forge.docker_config(root)[1]


def _forged(tmp_path: Path, sample: str) -> tuple[Path, dict, str]:
    root = tmp_path / "x"
    forge.extract(ROOT / "samples" / sample, root)
    oci = (root / "index.json").exists()
    cfg = forge.oci_config(root) if oci else forge.docker_config(root)[0]
    old_member = _config_member(root)
    # The "clean" image: the same history, the last RUN's command changed (as in the set, reversed).
    clean = json.loads(json.dumps(cfg))
    clean["history"][-1]["created_by"] = "/bin/sh -c echo honest"
    new = forge.forge_config(cfg, clean, {"User": "0:0", "Env": ["LD_PRELOAD=/x.so"]})
    if oci:
        forge.rewrite_oci_dir(root, new)
    else:
        forge.rewrite_docker_dir(root, new, "localhost/forged:1")
    out = tmp_path / "forged.tar"
    forge.pack(root, out)
    assert _config_member(root) != old_member
    return out, cfg, old_member


@pytest.mark.parametrize("sample", ["clean.docker.tar", "clean-zstd.oci.tar"])
def test_forged_archive_is_digest_consistent(tmp_path, sample):
    out, before, old_member = _forged(tmp_path, sample)
    report = analyze(str(out))
    structural = [f.code for f in report.findings if f.code.startswith(STRUCTURAL)]
    assert structural == []
    cfg = report.images[0].config
    assert cfg.user == "0:0"
    assert cfg.env[-1] == "LD_PRELOAD=/x.so" and cfg.env[:-1] == before["config"].get("Env", [])
    assert report.images[0].history[-1].created_by == "/bin/sh -c echo honest"
    # The old config and manifest blobs are gone, not left behind as evidence.
    with forge.tarfile.open(out) as tf:
        assert old_member not in tf.getnames()


def test_forge_config_copies_history_and_classic_cmd():
    poisoned = {
        "history": [{"created_by": "ADD x"}, {"created_by": "/bin/sh -c evil && ok"}],
        "container_config": {"Cmd": ["/bin/sh", "-c", "evil && ok"]},
        "config": {"User": "app"},
    }
    clean = {
        "history": [{"created_by": "ADD x"}, {"created_by": "/bin/sh -c ok"}],
        "container_config": {"Cmd": ["/bin/sh", "-c", "ok"]},
        "config": {"User": "app"},
    }
    assert forge.poisoned_history_indices(poisoned, clean) == [1]
    new = forge.forge_config(poisoned, clean, {})
    assert new["history"] == clean["history"] and new["container_config"]["Cmd"] == ["/bin/sh", "-c", "ok"]
    assert poisoned["history"][1]["created_by"] == "/bin/sh -c evil && ok"  # the input is not modified
    with pytest.raises(ValueError):
        forge.forge_config(poisoned, {"history": clean["history"][:1]}, {})
