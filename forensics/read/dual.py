"""docker-archive with an OCI layout inside (Docker 25+ `docker save`, containerd's
export): index.json and manifest.json side by side, naming the same blobs.

The OCI layout is read first; a manifest.json image whose config is an OCI image's is
the same image seen twice (its RepoTags are added to it), any other is read as docker's.
"""

from __future__ import annotations

from forensics.read import docker, extra, oci
from forensics.read.builder import Builder
from forensics.read.model import Archive, Resolved


def detect(archive: Archive) -> bool:
    return archive.get("index.json") is not None and archive.get("manifest.json") is not None


def read(archive: Archive) -> Resolved:
    b = Builder(archive, "docker-archive+oci")
    oci.walk_index_json(b)
    docker.read_manifest_json(b, link_to_oci=True)
    b.out += extra.check(archive, b.res.referenced, docker=True)
    return b.done()
