"""An SBOM attestation held to the packages the layers hold (attestation.sbom-mismatch).

An SBOM is what vulnerability and licence scanners read instead of the image: a package
the layers hold but the SBOM omits is hidden from them (medium), a version that differs
is matched against the wrong advisories (medium), a package the SBOM lists but no
database in the layers records is a stale or foreign SBOM (low: generators list what a
later layer removed, or statically linked code).

Packages are compared by ecosystem (from the purl: deb, apk, rpm, pypi, npm), name and
version. SBOM entries of other kinds (go modules, binaries, the image itself) are not
compared; an entry without a purl is matched by its name when exactly one ecosystem of
the layers knows it. An ecosystem the SBOM lists nothing of is one finding, not one per
package. `compare_statement` takes a parsed in-toto statement, whatever carried it (a
BuildKit attestation manifest here; a cosign `.att` envelope, once decoded).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from packageurl import PackageURL

from forensics.findings import Code, finding
from forensics.models import Finding, ImagePackages, InstalledPackage
from forensics.sbom.attestations import CYCLONEDX, SPDX

RAISES: tuple[Code, ...] = ("attestation.sbom-mismatch",)

ECOSYSTEM = {"dpkg": "deb", "apk": "apk", "rpm": "rpm", "pip": "pypi", "npm": "npm"}
ECOSYSTEMS = frozenset(ECOSYSTEM.values())
MAX_EACH = 50  # findings of one kind per statement; the rest are counted in one more
MAX_ENTRIES = 200_000  # SBOM entries read (a 16 MiB document holds far fewer)


@dataclass(frozen=True)
class SbomPackage:
    ecosystem: str | None  # deb, apk, rpm, pypi, npm, None (no purl), "other"
    name: str
    version: str


def _pypi(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503


def norm_name(ecosystem: str | None, name: str) -> str:
    return _pypi(name) if ecosystem == "pypi" else name


def norm_version(ecosystem: str | None, version: str) -> str:
    """An epoch 0 is no epoch (dpkg and rpm compare them equal)."""
    v = version.strip()
    if ecosystem in ("deb", "rpm", None) and v.startswith("0:"):
        v = v[2:]
    return v


def _from_purl(text: object, version: str) -> SbomPackage | None:
    if not isinstance(text, str):
        return None
    try:
        p = PackageURL.from_string(text)
    except ValueError:
        return None
    eco = p.type if p.type in ECOSYSTEMS else "other"
    name = f"{p.namespace}/{p.name}" if eco == "npm" and p.namespace else p.name
    v = version or p.version or ""
    quals = p.qualifiers if isinstance(p.qualifiers, dict) else {}
    epoch = quals.get("epoch")
    if eco in ("deb", "rpm") and epoch and ":" not in v:
        v = f"{epoch}:{v}"
    return SbomPackage(eco, norm_name(eco, name), norm_version(eco, v))


def _text(x: object) -> str:
    return x if isinstance(x, str) else ""


def sbom_packages(statement: dict) -> list[SbomPackage] | None:
    """The packages an SPDX (2.x JSON or 3 JSON-LD) or CycloneDX predicate lists; None if
    the predicate is neither."""
    ptype = _text(statement.get("predicateType"))
    pred = statement.get("predicate")
    if not isinstance(pred, dict):
        return None
    out: list[SbomPackage] = []

    def add(name: object, version: object, purl: object) -> None:
        if len(out) >= MAX_ENTRIES or not isinstance(name, str) or not name:
            return
        v = _text(version)
        got = _from_purl(purl, v)
        out.append(got if got is not None else SbomPackage(None, name, norm_version(None, v)))

    if ptype.startswith(SPDX):
        if isinstance(pred.get("packages"), list):  # SPDX 2.x
            for p in pred["packages"]:
                if not isinstance(p, dict):
                    continue
                raw = p.get("externalRefs")
                refs: list = raw if isinstance(raw, list) else []
                purl = next(
                    (
                        r.get("referenceLocator")
                        for r in refs
                        if isinstance(r, dict) and r.get("referenceType") == "purl"
                    ),
                    None,
                )
                add(p.get("name"), p.get("versionInfo"), purl)
            return out
        graph = pred.get("@graph") if isinstance(pred.get("@graph"), list) else pred.get("element")
        if isinstance(graph, list):  # SPDX 3 JSON-LD
            for e in graph:
                if isinstance(e, dict) and str(e.get("type", e.get("@type"))) in ("software_Package", "Package"):
                    add(e.get("name"), e.get("software_packageVersion"), e.get("software_packageUrl"))
            return out
        return None
    if ptype.startswith(CYCLONEDX):
        comps = pred.get("components")
        if not isinstance(comps, list):
            return None if pred.get("bomFormat") != "CycloneDX" else out
        stack = list(comps)
        while stack and len(out) < MAX_ENTRIES:
            c = stack.pop()
            if not isinstance(c, dict):
                continue
            if c.get("type") in ("library", "framework", "application", None):
                add(c.get("name"), c.get("version"), c.get("purl"))
            if isinstance(c.get("components"), list):
                stack.extend(c["components"])
        return out
    return None


def _versions(vs) -> str:
    return ", ".join(sorted(v or "(no version)" for v in vs))


def compare_statement(
    statement: dict,
    inventory: ImagePackages,
    *,
    image: int,
    where: str = "SBOM attestation",
    source: str | None = None,
    digest: str | None = None,
) -> list[Finding]:
    """attestation.sbom-mismatch findings for one in-toto SBOM statement about this image.
    `where` names it in sentences, `source` (evidence) says where it is, `digest` is its blob's."""
    ptype = _text(statement.get("predicateType"))[:200]
    base: dict[str, object] = {"attestation": source or where, "predicate_type": ptype}
    listed = sbom_packages(statement)
    if listed is None:
        return [
            finding(
                "attestation.sbom-mismatch",
                "low",
                f"image[{image}] SBOM",
                f"the {where} declares predicate type {ptype!r} but holds no SPDX or CycloneDX package list: "
                "it describes nothing the layers can be held to",
                image=image,
                digest=digest,
                evidence=base,
            )
        ]
    layers: dict[tuple[str, str], list[InstalledPackage]] = {}
    for pkg in inventory.packages:
        eco = ECOSYSTEM[pkg.manager]
        layers.setdefault((eco, norm_name(eco, pkg.name)), []).append(pkg)
    by_name: dict[str, set[str]] = {}
    for (eco, name), pkgs in layers.items():
        for n in {name, pkgs[0].name}:  # an entry without purl may spell a pip name either way
            by_name.setdefault(n, set()).add(eco)
    sbom: dict[tuple[str, str], set[str]] = {}
    not_compared = 0
    for sp in listed:
        placed = sp.ecosystem
        if placed is None:  # no purl: placed by its name when one ecosystem of the layers has it
            ecos = by_name.get(sp.name, set())
            placed = next(iter(ecos)) if len(ecos) == 1 else None
        if placed is None or placed == "other":
            not_compared += 1
            continue
        sbom.setdefault((placed, norm_name(placed, sp.name)), set()).add(sp.version)
    covered = {eco for eco, _ in sbom}
    base["not_compared"] = not_compared

    omitted: list[InstalledPackage] = []
    wrong: list[tuple[InstalledPackage, set[str], set[str]]] = []
    absent: list[tuple[tuple[str, str], set[str]]] = []
    missing_eco: dict[str, list[InstalledPackage]] = {}
    for key, pkgs in sorted(layers.items()):
        eco, name = key
        have = {norm_version(eco, p.version) for p in pkgs}
        if eco not in covered:
            missing_eco.setdefault(eco, []).append(pkgs[0])
        elif key not in sbom:
            omitted.append(pkgs[0])
        elif not have <= sbom[key] or not sbom[key] & have:
            wrong.append((pkgs[0], have, sbom[key]))
    for key in sorted(sbom.keys() - layers.keys()):
        absent.append((key, sbom[key]))

    out: list[Finding] = []

    def emit(kind: str, items: list, make) -> None:
        for item in items[:MAX_EACH]:
            out.append(make(item))
        if len(items) > MAX_EACH:
            out.append(
                finding(
                    "attestation.sbom-mismatch",
                    "low" if kind == "absent" else "medium",
                    f"image[{image}] SBOM",
                    f"{len(items) - MAX_EACH} more packages {kind} (the first {MAX_EACH} are reported one by one)",
                    image=image,
                    digest=digest,
                    evidence={**base, "kind": kind, "more": len(items) - MAX_EACH},
                )
            )

    def where_in_layers(p: InstalledPackage) -> str:
        layer = f", layer {p.layer}" if p.layer is not None else ""
        return f"recorded in {p.database}{layer}"

    emit(
        "omitted",
        omitted,
        lambda p: finding(
            "attestation.sbom-mismatch",
            "medium",
            f"image[{image}] package {p.name}",
            f"the layers hold {ECOSYSTEM[p.manager]} package {p.name} {p.version} ({where_in_layers(p)}), but the "
            f"{where} does not list it: a scanner that reads the SBOM never sees it",
            image=image,
            layer=p.layer,
            path=p.database,
            digest=digest,
            evidence={
                **base,
                "kind": "omitted",
                "ecosystem": ECOSYSTEM[p.manager],
                "name": p.name,
                "layers": [p.version],
            },
        ),
    )
    emit(
        "with another version",
        wrong,
        lambda t: finding(
            "attestation.sbom-mismatch",
            "medium",
            f"image[{image}] package {t[0].name}",
            f"the {where} lists {ECOSYSTEM[t[0].manager]} package {t[0].name} as {_versions(t[2])}, but the layers "
            f"hold {_versions(t[1])} ({where_in_layers(t[0])}): a scanner that reads the SBOM matches the wrong "
            "version's advisories",
            image=image,
            layer=t[0].layer,
            path=t[0].database,
            digest=digest,
            evidence={
                **base,
                "kind": "version",
                "ecosystem": ECOSYSTEM[t[0].manager],
                "name": t[0].name,
                "layers": sorted(t[1]),
                "sbom": sorted(t[2]),
            },
        ),
    )
    emit(
        "absent from the layers",
        absent,
        lambda t: finding(
            "attestation.sbom-mismatch",
            "low",
            f"image[{image}] package {t[0][1]}",
            f"the {where} lists {t[0][0]} package {t[0][1]} {_versions(t[1])}, which no package database in the "
            "layers records (removed by a later layer, not installed by a package manager, or the SBOM of "
            "another build)",
            image=image,
            digest=digest,
            evidence={**base, "kind": "absent", "ecosystem": t[0][0], "name": t[0][1], "sbom": sorted(t[1])},
        ),
    )
    for eco, pkgs in sorted(missing_eco.items()):
        names = ", ".join(f"{p.name} {p.version}" for p in pkgs[:5]) + (", ..." if len(pkgs) > 5 else "")
        out.append(
            finding(
                "attestation.sbom-mismatch",
                "medium",
                f"image[{image}] {eco} packages",
                f"the layers hold {len(pkgs)} {eco} package{'s' if len(pkgs) != 1 else ''} ({names}), but the "
                f"{where} lists no {eco} package at all: a scanner that reads the SBOM sees none of them",
                image=image,
                digest=digest,
                evidence={**base, "kind": "ecosystem omitted", "ecosystem": eco, "names": [p.name for p in pkgs][:200]},
            )
        )
    return out
