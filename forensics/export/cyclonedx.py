"""CycloneDX 1.6 JSON of the packages the image's databases record (`scan --cyclonedx`).

Built with cyclonedx-python-lib, which owns the schema and the purl rules
(packageurl-python), so trivy and grype read it as they read their own: each
package found (Report.packages, forensics.history.inventory) is a `library`
component with its purl (`pkg:deb/debian/bash@5.2.15-2?arch=amd64&distro=debian-12`,
`pkg:apk/alpine/..`, `pkg:rpm/fedora/..?epoch=1`, `pkg:pypi/..`, `pkg:npm/..`; the
distribution from the image's /etc/os-release), the layer its record has held that
version since (`forensics:layer:*` properties), and each regular file it owns as an
`evidence.occurrences` entry whose additionalContext is the file's sha256 and the layer
that wrote it. The image is the metadata component (`pkg:oci/NAME@<manifest digest>`);
an archive of several images is the metadata component and holds them as containers.
The distribution is an operating-system component, the parent of its packages in the
dependency graph, as vulnerability scanners expect.

Every value comes from the image and is kept as it is; the JSON is ASCII (escapes).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

from cyclonedx.model import HashAlgorithm, HashType, Property
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.model.component_evidence import ComponentEvidence, Occurrence
from cyclonedx.output.json import JsonV1Dot6
from packageurl import PackageURL

from forensics import __version__
from forensics.compare.fs import Replay
from forensics.models import Image, ImagePackages, InstalledPackage, Report

PURL_TYPE = {"dpkg": "deb", "apk": "apk", "rpm": "rpm", "pip": "pypi", "npm": "npm"}
OS_MANAGERS = ("dpkg", "apk", "rpm")
# The namespace a distribution package's purl needs when the image has no os-release.
DEFAULT_VENDOR = {"dpkg": "debian", "apk": "alpine"}


def _props(pairs: Iterable[tuple[str, object]]) -> list[Property]:
    return [Property(name=k, value=str(v)) for k, v in pairs if v is not None and v != ""]


def _utf8(text: str) -> str:
    """A purl is percent-encoded UTF-8: a name that is not Unicode text (bytes kept with
    surrogateescape, a lone surrogate from a JSON escape) gets U+FFFD where it cannot be."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def _name(text: str, fallback: str) -> str:
    """packageurl strips whitespace and '/' from a name and then has none to write (a
    TypeError deep in to_string): a forged name made only of those gets the fallback."""
    return text if text.replace("/", "").strip() else fallback


def package_purl(pkg: InstalledPackage, osr: ImagePackages) -> PackageURL:
    """The purl a scanner matches advisories by."""
    qualifiers: dict[str, str] = {}
    namespace: str | None = None
    name, version = _utf8(pkg.name), _utf8(pkg.version)
    if pkg.manager in OS_MANAGERS:
        namespace = _utf8(osr.os_id) if osr.os_id else DEFAULT_VENDOR.get(pkg.manager)
        if pkg.arch:
            qualifiers["arch"] = _utf8(pkg.arch)
        if osr.os_id and osr.os_version:
            qualifiers["distro"] = _utf8(f"{osr.os_id}-{osr.os_version}")
        if pkg.manager == "rpm":
            epoch, colon, rest = version.partition(":")
            if colon and epoch.isdigit():  # purl-spec: an rpm epoch is a qualifier, not part of the version
                version = rest
                if epoch != "0":
                    qualifiers["epoch"] = epoch
    elif pkg.manager == "npm" and name.startswith("@") and "/" in name:
        namespace, name = name.split("/", 1)
    return PackageURL(
        type=PURL_TYPE[pkg.manager],
        namespace=namespace,
        name=_name(name, "unnamed"),
        version=version or None,
        qualifiers=qualifiers or None,
    )


def image_purl(img: Image) -> PackageURL | None:
    """purl-spec `oci`: the repository's last name, the manifest digest, where it came from."""
    digest = img.manifest_digest or img.config_digest
    if digest is None:
        return None
    ref = _utf8(next((r for r in img.refs if r), ""))  # a forged tag: the index's annotation, any JSON string
    repo, tag = ref.split("@", 1)[0], None
    slash = repo.rfind("/")
    if ":" in repo[slash + 1 :]:
        repo, tag = repo.rsplit(":", 1)
    qualifiers = {"repository_url": repo, "tag": tag}
    if img.platform:
        parts = _utf8(img.platform).split("/")
        qualifiers["arch"] = parts[1] if len(parts) > 1 else None
    return PackageURL(
        type="oci",
        name=_name(repo.rsplit("/", 1)[-1], "image").lower(),
        version=_utf8(digest),
        qualifiers={k: v for k, v in qualifiers.items() if v} or None,
    )


def _sha256(digest: str | None) -> list[HashType]:
    if digest and digest.startswith("sha256:"):
        return [HashType(alg=HashAlgorithm.SHA_256, content=digest.removeprefix("sha256:"))]
    return []


def _image_component(img: Image, ref: str) -> Component:
    purl = image_purl(img)
    return Component(
        type=ComponentType.CONTAINER,
        name=(img.refs[0] if img.refs else None) or (purl.name if purl else f"image {img.index}"),
        version=img.manifest_digest or img.config_digest,
        purl=purl,
        bom_ref=ref,
        hashes=_sha256(img.manifest_digest),
        properties=_props(
            [
                ("forensics:image:index", img.index),
                ("forensics:image:manifest_digest", img.manifest_digest),
                ("forensics:image:config_digest", img.config_digest),
                ("forensics:image:platform", img.platform),
                *(("forensics:image:ref", r) for r in img.refs),
            ]
        ),
    )


def _package_component(pkg: InstalledPackage, osr: ImagePackages, img: Image, replay: Replay, ref: str) -> Component:
    layer = img.layers[pkg.layer] if pkg.layer is not None and 0 <= pkg.layer < len(img.layers) else None
    occurrences = []
    for path in pkg.files:
        st = replay.final.get(path)
        if st is None or st.sha256 is None:
            continue
        occurrences.append(
            Occurrence(location=path, additional_context=f"sha256:{st.sha256} written by layer {st.layer}")
        )
    return Component(
        type=ComponentType.LIBRARY,
        name=pkg.name or "unnamed",
        version=pkg.version,
        purl=package_purl(pkg, osr),
        bom_ref=ref,
        evidence=ComponentEvidence(occurrences=occurrences) if occurrences else None,
        properties=_props(
            [
                ("forensics:package:manager", pkg.manager),
                ("forensics:package:database", pkg.database),
                ("forensics:package:arch", pkg.arch),
                ("forensics:layer:index", pkg.layer),
                ("forensics:layer:diff_id", layer.diff_id if layer else None),
                ("forensics:layer:digest", layer.digest if layer else None),
            ]
        ),
    )


class _Refs:
    """bom-refs unique in the document (two site directories may hold one pip package)."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}

    def __call__(self, base: str) -> str:
        n = self.seen.get(base, 0)
        self.seen[base] = n + 1
        return base if n == 0 else f"{base}#{n + 1}"


def report_to_bom(report: Report) -> Bom:
    inp = report.input
    finished = report.analysis.finished if report.analysis else None
    bom = Bom(
        # The same input read by the same version is the same BOM: a reproducible serial number.
        serial_number=uuid.uuid5(uuid.NAMESPACE_URL, f"forensics:{__version__}:{inp.sha256}:{inp.path}"),
    )
    if finished:
        bom.metadata.timestamp = datetime.strptime(finished, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    bom.metadata.tools.components.add(
        Component(
            type=ComponentType.APPLICATION, name="forensics", group="container-image-forensics", version=__version__
        )
    )
    case = report.case
    bom.metadata.properties.update(
        _props(
            [
                ("forensics:input:path", inp.path),
                ("forensics:input:sha256", inp.sha256),
                ("forensics:verdict", report.verdict),
                ("forensics:case", case.case if case else None),
                ("forensics:examiner", case.examiner if case else None),
                ("forensics:note", case.note if case else None),
            ]
        )
    )
    refs = _Refs()
    inventory = {p.image: p for p in report.packages}
    several = len(report.images) != 1
    if several:
        bom.metadata.component = Component(
            type=ComponentType.FILE,
            name=inp.path,
            bom_ref=refs("archive"),
            hashes=_sha256(inp.sha256),
        )
    images: list[Component] = []
    for img in report.images:
        prefix = f"image{img.index}/" if several else ""
        image_c = _image_component(img, refs(prefix + "image"))
        if several:
            bom.components.add(image_c)
        else:
            bom.metadata.component = image_c
        osr = inventory.get(img.index) or ImagePackages(image=img.index)
        replay = Replay(img)
        os_c = None
        if osr.os_id:
            os_c = Component(
                type=ComponentType.OPERATING_SYSTEM,
                name=osr.os_id,
                version=osr.os_version,
                description=osr.os_name,
                bom_ref=refs(f"{prefix}os:{osr.os_id}"),
            )
            bom.components.add(os_c)
        os_pkgs: list[Component] = []
        lang_pkgs: list[Component] = []
        for pkg in osr.packages:
            c = _package_component(pkg, osr, img, replay, refs(prefix + package_purl(pkg, osr).to_string()))
            bom.components.add(c)
            (os_pkgs if pkg.manager in OS_MANAGERS and os_c is not None else lang_pkgs).append(c)
        if os_c is not None:
            bom.register_dependency(os_c, os_pkgs)
        bom.register_dependency(image_c, ([os_c] if os_c is not None else []) + lang_pkgs)
        images.append(image_c)
    if several and bom.metadata.component is not None:
        bom.register_dependency(bom.metadata.component, images)
    return bom


def report_to_cyclonedx(report: Report) -> str:
    """The CycloneDX 1.6 JSON text (ASCII: every non-ASCII character escaped)."""
    doc = json.loads(JsonV1Dot6(report_to_bom(report)).output_as_string())
    for c in doc.get("components", []):
        occ = c.get("evidence", {}).get("occurrences")
        if occ:  # the library keeps them in a hash-ordered set: sorted, the same input gives the same bytes
            occ.sort(key=lambda o: o["location"])
    return json.dumps(doc, indent=1, ensure_ascii=True) + "\n"
