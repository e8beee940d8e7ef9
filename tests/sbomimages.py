"""Builders of images with package databases and SBOM attestations, for tests/test_cyclonedx.py
and tests/test_sbom_compare.py.

Real bytes in each database's own format (apk `installed`, an rpm sqlite database with a
header rpm's layout, pip RECORD, npm package.json, dpkg status), put in layers by
tests/hostile.py's OCI builder, which computes every digest: what a test plants is the
only thing wrong with the archive. An attestation is attached as BuildKit attaches one:
an index entry `vnd.docker.reference.type: attestation-manifest` naming the image
manifest, whose layers are in-toto statements.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

from hostile import Layer, M, Oci, hexof, jbytes, sha, tar_bytes, tar_entries
from test_packages import BASH_BIN, BASHRC, bash_header, make_rpmdb

MUSL = b"\x7fELF musl\n"
BUSYBOX = b"\x7fELF busybox v2\n"
REQUESTS_INIT = b"__version__ = '2.31.0'\n"
TYPING_EXT = b"# typing_extensions\n"
LEFTPAD = b"module.exports = (s, n) => s.padStart(n);\n"
SITE = "usr/lib/python3.12/site-packages"
ALPINE_RELEASE = b'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.19.1\nPRETTY_NAME="Alpine Linux v3.19"\n'
FEDORA_RELEASE = b'NAME="Fedora Linux"\nID=fedora\nVERSION_ID=40\nPRETTY_NAME="Fedora Linux 40 (Container Image)"\n'


def q1(data: bytes) -> str:
    """apk v3 (f:S): Q1 + base64 of the first 160 bits of the sha256."""
    return "Q1" + base64.b64encode(hashlib.sha256(data).digest()[:20]).decode()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def dirs(*names: str) -> list[M]:
    return [M(n if n.endswith("/") else n + "/", type="dir") for n in names]


def apk_installed(busybox_version: str = "1.36.1-r15") -> bytes:
    return (
        f"P:musl\nV:1.2.4_git20230717-r4\nA:x86_64\nf:S\nF:lib\nR:ld-musl-x86_64.so.1\na:0:0:755\nZ:{q1(MUSL)}\n\n"
        f"P:busybox\nV:{busybox_version}\nA:x86_64\nf:S\nF:bin\nR:busybox\na:0:0:755\nZ:{q1(BUSYBOX)}\n\n"
    ).encode()


def alpine_layers(busybox_upgrade: str | None = None) -> list[list[M]]:
    """Layer 0: Alpine (apk, os-release behind the /etc link); layer 1: pip and npm installs;
    with `busybox_upgrade`, a layer 2 that rewrites the apk database with a new busybox version."""
    base = [
        *dirs("etc", "lib", "bin", "usr", "usr/lib", "lib/apk", "lib/apk/db"),
        M("usr/lib/os-release", ALPINE_RELEASE),
        M("etc/os-release", type="symlink", link="../usr/lib/os-release"),
        M("lib/ld-musl-x86_64.so.1", MUSL, mode=0o755),
        M("bin/busybox", BUSYBOX, mode=0o755),
        M("lib/apk/db/installed", apk_installed()),
    ]
    record = (
        f"requests/__init__.py,sha256={b64(REQUESTS_INIT)},{len(REQUESTS_INIT)}\nrequests-2.31.0.dist-info/RECORD,,\n"
    ).encode()
    record2 = (
        f"typing_extensions.py,sha256={b64(TYPING_EXT)},{len(TYPING_EXT)}\ntyping_extensions-4.8.0.dist-info/RECORD,,\n"
    ).encode()
    lang = [
        *dirs(
            "usr/lib/python3.12",
            SITE,
            f"{SITE}/requests",
            f"{SITE}/requests-2.31.0.dist-info",
            f"{SITE}/typing_extensions-4.8.0.dist-info",
            "usr/lib/node_modules",
            "usr/lib/node_modules/@acme",
            "usr/lib/node_modules/@acme/left-pad",
        ),
        M(f"{SITE}/requests/__init__.py", REQUESTS_INIT),
        M(f"{SITE}/requests-2.31.0.dist-info/RECORD", record),
        M(f"{SITE}/typing_extensions.py", TYPING_EXT),
        M(f"{SITE}/typing_extensions-4.8.0.dist-info/RECORD", record2),
        M("usr/lib/node_modules/@acme/left-pad/package.json", b'{"name": "@acme/left-pad", "version": "1.3.0"}'),
        M("usr/lib/node_modules/@acme/left-pad/index.js", LEFTPAD),
    ]
    layers = [base, lang]
    if busybox_upgrade:
        layers.append(
            [
                *dirs("bin", "lib", "lib/apk", "lib/apk/db"),
                M("bin/busybox", BUSYBOX, mode=0o755),
                M("lib/apk/db/installed", apk_installed(busybox_upgrade)),
            ]
        )
    return layers


def fedora_layers(tmp_path: Path, os_release: bool = True) -> list[list[M]]:
    """One layer: bash from an rpm sqlite database (epoch 1), and Fedora's os-release."""
    db = make_rpmdb(tmp_path / "rpmdb.sqlite", [bash_header()])
    layer = [
        *dirs("etc", "usr", "usr/bin", "var", "var/lib", "var/lib/rpm"),
        M("usr/bin/bash", BASH_BIN, mode=0o755),
        M("etc/bashrc", BASHRC),
        M("var/lib/rpm/rpmdb.sqlite", db),
    ]
    if os_release:
        layer.append(M("etc/os-release", FEDORA_RELEASE))
    return [layer]


def debian_layers(os_release: bool = False) -> list[list[M]]:
    status = (
        b"Package: hello\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.10-3\n\n"
        b"Package: tzdata\nStatus: install ok installed\nArchitecture: all\nVersion: 2024a-0+deb12u1\n\n"
    )
    layer = [
        *dirs("usr", "usr/bin", "var", "var/lib", "var/lib/dpkg", "var/lib/dpkg/info"),
        M("usr/bin/hello", b"\x7fELF hello\n", mode=0o755),
        M("var/lib/dpkg/status", status),
        M("var/lib/dpkg/info/hello.list", b"/.\n/usr\n/usr/bin\n/usr/bin/hello\n"),
        M(
            "var/lib/dpkg/info/hello.md5sums",
            hashlib.md5(b"\x7fELF hello\n").hexdigest().encode() + b"  usr/bin/hello\n",
        ),
    ]
    if os_release:
        layer.insert(0, M("etc/", type="dir"))
        layer.insert(1, M("etc/os-release", b"ID=debian\nVERSION_ID=12\n"))
    return [layer]


HISTORY = {
    "alpine": [
        {"created_by": "/bin/sh -c #(nop) ADD file:0a1b in / "},
        {"created_by": "/bin/sh -c pip install requests typing_extensions && npm install -g @acme/left-pad"},
        {"created_by": "/bin/sh -c apk upgrade busybox"},
    ],
    "one": [{"created_by": "/bin/sh -c #(nop) ADD file:0a1b in / "}],
}


def image(layers: list[list[M]], history: list[dict]) -> Oci:
    def mutate(cfg):
        cfg["history"] = history[: len(layers)]

    return Oci(layers=[Layer.of(tar_bytes(m)) for m in layers], mutate_config=mutate)


def spdx_statement(manifest: str, packages: list[tuple[str, str, str | None]]) -> dict:
    """An in-toto statement with an SPDX 2.3 predicate, as BuildKit's syft scanner writes it:
    (name, version, purl) per package."""
    return {
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": "https://spdx.dev/Document",
        "subject": [{"name": "pkg:docker/example.test/hostile@1", "digest": {"sha256": manifest.split(":", 1)[1]}}],
        "predicate": {
            "spdxVersion": "SPDX-2.3",
            "SPDXID": "SPDXRef-DOCUMENT",
            "name": "sbom",
            "packages": [
                {
                    "name": name,
                    "SPDXID": f"SPDXRef-Package-{i}",
                    "versionInfo": version,
                    **(
                        {
                            "externalRefs": [
                                {
                                    "referenceCategory": "PACKAGE-MANAGER",
                                    "referenceType": "purl",
                                    "referenceLocator": purl,
                                }
                            ]
                        }
                        if purl
                        else {}
                    ),
                }
                for i, (name, version, purl) in enumerate(packages)
            ],
        },
    }


def cyclonedx_statement(manifest: str, packages: list[tuple[str, str, str | None]]) -> dict:
    return {
        "_type": "https://in-toto.io/Statement/v1",
        "predicateType": "https://cyclonedx.org/bom",
        "subject": [{"name": "image", "digest": {"sha256": manifest.split(":", 1)[1]}}],
        "predicate": {
            "bomFormat": "CycloneDX",
            "specVersion": "1.5",
            "components": [
                {"type": "library", "name": n, "version": v, **({"purl": p} if p else {})} for n, v, p in packages
            ],
        },
    }


def attach(tar: bytes, statements: list[dict | bytes], path: Path, *, subject_digest: str | None = None) -> Path:
    """The OCI archive `tar` (its first image) with a BuildKit attestation manifest carrying
    `statements` (dicts, or raw bytes), written to `path`."""
    entries = tar_entries(tar)
    index = json.loads(next(data for ti, data in entries if ti.name == "index.json"))
    target = subject_digest or index["manifests"][0]["digest"]
    blobs = [s if isinstance(s, bytes) else jbytes(s) for s in statements]
    empty = b"{}"
    att = jbytes(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(empty), "size": 2},
            "layers": [
                {
                    "mediaType": "application/vnd.in-toto+json",
                    "digest": sha(b),
                    "size": len(b),
                    "annotations": {"in-toto.io/predicate-type": str(_predicate_type(b))},
                }
                for b in blobs
            ],
        }
    )
    index["manifests"].append(
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": sha(att),
            "size": len(att),
            "platform": {"architecture": "unknown", "os": "unknown"},
            "annotations": {"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": target},
        }
    )
    members: list[M | bytes] = []
    for ti, data in entries:
        if ti.name == "index.json":
            continue
        members.append(M(ti.name, data, type="dir" if ti.isdir() else "file", mode=ti.mode))
    have = {m.name for m in members if isinstance(m, M)}
    for b in {hexof(b): b for b in (*blobs, empty, att)}.values():
        if f"blobs/sha256/{hexof(b)}" not in have:
            members.append(M(f"blobs/sha256/{hexof(b)}", b))
    members.append(M("index.json", jbytes(index)))
    path.write_bytes(tar_bytes(members))
    return path


def _predicate_type(blob: bytes) -> object:
    try:
        doc = json.loads(blob)
    except ValueError:
        return ""
    return doc.get("predicateType", "") if isinstance(doc, dict) else ""


def manifest_digest(tar: bytes) -> str:
    entries = tar_entries(tar)
    return json.loads(next(data for ti, data in entries if ti.name == "index.json"))["manifests"][0]["digest"]


def attach_referrer(tar: bytes, document: dict, media_type: str, path: Path) -> Path:
    """`tar` with a bare SBOM document attached as `oras attach --artifact-type <media_type>`
    writes it (OCI 1.1: artifactType, the empty config, `subject` naming the image)."""
    entries = tar_entries(tar)
    index = json.loads(next(data for ti, data in entries if ti.name == "index.json"))
    image = index["manifests"][0]
    doc, empty = jbytes(document), b"{}"
    man = jbytes(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": media_type,
            "config": {
                "mediaType": "application/vnd.oci.empty.v1+json",
                "digest": sha(empty),
                "size": 2,
                "data": base64.b64encode(empty).decode(),
            },
            "layers": [{"mediaType": media_type, "digest": sha(doc), "size": len(doc)}],
            "subject": {"mediaType": image["mediaType"], "digest": image["digest"], "size": image["size"]},
        }
    )
    index["manifests"].append(
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": sha(man),
            "size": len(man),
            "artifactType": media_type,
        }
    )
    members: list[M | bytes] = [
        M(ti.name, data, type="dir" if ti.isdir() else "file", mode=ti.mode)
        for ti, data in entries
        if ti.name != "index.json"
    ]
    have = {m.name for m in members if isinstance(m, M)}
    for b in (doc, empty, man):
        if f"blobs/sha256/{hexof(b)}" not in have:
            members.append(M(f"blobs/sha256/{hexof(b)}", b))
    members.append(M("index.json", jbytes(index)))
    path.write_bytes(tar_bytes(members))
    return path
