"""Suppressions: findings a team has reviewed and accepts, kept out of the verdict and --fail-on.

A suppression file is TOML (stdlib `tomllib`):

    [[ignore]]
    code = "file.persistence"                  # required: a code of the vocabulary
    paths = ["/etc/cron.d/*"]                  # optional globs (* within a name, ** across)
    digest = "sha256:..."                      # optional: an image, manifest, config or layer digest
    statement = "our cron job, see ticket 123" # required: why
    expires = 2027-06-30                       # optional: the entry holds through that day (UTC)

An entry matches a finding of its code whose path matches one of its globs (a finding
without a path never matches an entry with paths) and that concerns its digest (the
finding's own digest, its image's manifest or config digest, or its layer's digest or
diff_id). A matched finding moves from `Report.findings` to `Report.suppressed` with the
statement and the entry that matched it; the verdict is recomputed from what is left.

The file is input too, and may come with the evidence: one read beside the archive was
perhaps written by whoever forged it. So nothing here is silent: every file read is
recorded with its sha256 in `Report.suppression`, the command line says which file was
applied and from where, an entry that matches every finding of a code is warned about,
an expired entry is ignored with a warning and an entry that matched nothing is
reported. Any key this format does not define is an error, not ignored: `path = ...`
for `paths` would otherwise silently widen the entry to every path.
"""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from forensics.compare.noise import matches, normalize_pattern
from forensics.findings import EXPLANATIONS
from forensics.models import Finding, IgnoreRule, Report, SuppressedFinding, Suppression, SuppressionFile

DEFAULT_NAME = ".forensics-ignore.toml"
MAX_BYTES = 1 << 20  # a suppression file is a short list written by people
KEYS = ("code", "paths", "digest", "statement", "expires")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}\Z")
_HEADER = re.compile(r"^[ \t]*\[\[[ \t]*ignore[ \t]*\]\]", re.M)


class IgnoreFileError(ValueError):
    """A malformed suppression file: a usage error, one line naming the file, line and key."""


@dataclass
class Loaded:
    files: list[SuppressionFile] = field(default_factory=list)
    rules: list[IgnoreRule] = field(default_factory=list)


def default_files(archive: str, cwd: str | None = None) -> list[tuple[str, str]]:
    """(path, how) of the default files that exist: beside the input (never inside an input
    directory: that is the evidence), then in the working directory; each file once."""
    found: list[tuple[str, str]] = []
    seen: set[str] = set()
    places = []
    if archive != "-":
        places.append((os.path.dirname(os.path.realpath(archive)), "beside the input"))
    places.append((os.path.realpath(cwd or os.getcwd()), "working directory"))
    for folder, how in places:
        path = os.path.join(folder, DEFAULT_NAME)
        if os.path.isfile(path) and os.path.realpath(path) not in seen:
            seen.add(os.path.realpath(path))
            found.append((path, how))
    return found


def _where(source: str, line: int | None, n: int) -> str:
    return f"{source}: " + (f"line {line}: " if line else "") + f"entry {n}"


def _expires(value: object, where: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    raise IgnoreFileError(f"{where}: 'expires' must be a date (expires = 2027-06-30), not {value!r}")


def parse(text: str, source: str) -> list[IgnoreRule]:
    """The entries of one suppression file; IgnoreFileError names the first problem."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise IgnoreFileError(f"{source}: not valid TOML: {exc}") from None
    extra = sorted(set(doc) - {"ignore"})
    if extra:
        raise IgnoreFileError(
            f"{source}: unknown top-level key {extra[0]!r} (a suppression file holds [[ignore]] entries)"
        )
    entries = doc.get("ignore", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise IgnoreFileError(f"{source}: 'ignore' must be an array of tables ([[ignore]])")
    # [[ignore]] headers, in order: the line of each entry written that way
    lines = [text.count("\n", 0, m.start()) + 1 for m in _HEADER.finditer(text)]
    rules: list[IgnoreRule] = []
    for n, e in enumerate(entries, 1):
        line = lines[n - 1] if len(lines) == len(entries) else None
        where = _where(source, line, n)
        unknown = sorted(set(e) - set(KEYS))
        if unknown:
            raise IgnoreFileError(f"{where}: unknown key {unknown[0]!r} (allowed: {', '.join(KEYS)})")
        code = e.get("code")
        if not isinstance(code, str) or not code:
            raise IgnoreFileError(f"{where}: 'code' is required (a finding code, such as \"file.persistence\")")
        if code not in EXPLANATIONS:
            raise IgnoreFileError(f"{where}: 'code' {code!r} is not a finding code of this tool")
        statement = e.get("statement")
        if not isinstance(statement, str) or not statement.strip():
            raise IgnoreFileError(f"{where}: 'statement' is required: say why the finding is accepted")
        paths = e.get("paths", [])
        if isinstance(paths, str):
            paths = [paths]
        if not isinstance(paths, list) or not all(isinstance(p, str) and p.strip() for p in paths):
            raise IgnoreFileError(f"{where}: 'paths' must be a list of non-empty glob strings")
        digest = e.get("digest")
        if digest is not None and (not isinstance(digest, str) or not _DIGEST.match(digest)):
            raise IgnoreFileError(f"{where}: 'digest' must be sha256: and 64 lowercase hex digits, not {digest!r}")
        rules.append(
            IgnoreRule(
                source=source,
                entry=n,
                line=line,
                code=code,
                paths=[normalize_pattern(p) for p in paths],
                digest=digest,
                statement=statement.strip(),
                expires=_expires(e.get("expires"), where),
            )
        )
    return rules


def load(files: list[tuple[str, str]]) -> Loaded:
    """Read each (path, how); IgnoreFileError for a file that cannot be read or parsed."""
    out = Loaded()
    for path, how in files:
        resolved = os.path.realpath(path)
        try:
            with open(resolved, "rb") as fh:
                raw = fh.read(MAX_BYTES + 1)
        except OSError as exc:
            raise IgnoreFileError(f"{path}: cannot read the suppression file: {exc.strerror or exc}") from None
        if len(raw) > MAX_BYTES:
            raise IgnoreFileError(f"{path}: larger than {MAX_BYTES} bytes: not a suppression file")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise IgnoreFileError(f"{path}: not UTF-8 text (byte {exc.start})") from None
        rules = parse(text, resolved)
        out.files.append(
            SuppressionFile(path=resolved, how=how, sha256=hashlib.sha256(raw).hexdigest(), entries=len(rules))
        )
        out.rules.extend(rules)
    return out


def _digests_of(f: Finding, report: Report) -> set[str]:
    """Every digest a finding concerns: its own, its image's, its layer's."""
    found = {f.digest} if f.digest else set()
    imgs = [i for i in report.images if i.index == f.image] if f.image is not None else []
    if not imgs and f.image is None and f.layer is not None and len(report.images) == 1:
        imgs = list(report.images)
    for img in imgs:
        found |= {d for d in (img.manifest_digest, img.config_digest, img.declared_config_digest) if d}
        if f.layer is not None and 0 <= f.layer < len(img.layers):
            lay = img.layers[f.layer]
            found |= {d for d in (lay.digest, lay.actual_sha256, lay.diff_id, lay.declared_diff_id) if d}
    return {d if d.startswith("sha256:") else "sha256:" + d for d in found}


def _matches(rule: IgnoreRule, f: Finding, report: Report) -> bool:
    if f.code != rule.code:
        return False
    if rule.paths and (f.path is None or not any(matches(p, f.path) for p in rule.paths)):
        return False
    return rule.digest is None or rule.digest in _digests_of(f, report)


def apply(report: Report, loaded: Loaded, today: date | None = None) -> None:
    """Move the findings the live entries match to `report.suppressed`; recompute the verdict;
    record the files, each entry's outcome and the warnings in `report.suppression`."""
    from forensics.pipeline import verdict_for

    today = today or datetime.now(UTC).date()
    warnings: list[str] = []
    rules = [r.model_copy() for r in loaded.rules]
    for r in rules:
        if r.expires is not None and date.fromisoformat(r.expires) < today:
            r.status = "expired"
            warnings.append(f"{_where(r.source, r.line, r.entry)} ({r.code}) expired on {r.expires}: not applied")
        elif not r.paths and r.digest is None:
            warnings.append(
                f"{_where(r.source, r.line, r.entry)} suppresses every {r.code} finding (no paths, no digest)"
            )
    live = [r for r in rules if r.status != "expired"]
    kept: list[Finding] = []
    moved: list[SuppressedFinding] = []
    new_index: dict[int, int] = {}
    for n, f in enumerate(report.findings):
        rule = next((r for r in live if _matches(r, f, report)), None)
        if rule is None:
            new_index[n] = len(kept)
            kept.append(f)
            continue
        rule.matched += 1
        moved.append(SuppressedFinding(finding=f, statement=rule.statement, source=rule.source, entry=rule.entry))
    for r in live:
        if r.matched == 0:
            r.status = "unmatched"
            warnings.append(f"{_where(r.source, r.line, r.entry)} ({r.code}) matched no finding")
    # StepAnalysis.findings index Report.findings: keep them pointing at the same findings
    for img in report.images:
        for h in img.history:
            if h.analysis is not None:
                h.analysis.findings = [new_index[i] for i in h.analysis.findings if i in new_index]
    unreadable = report.verdict == "unreadable"
    report.findings = kept
    report.suppressed = list(report.suppressed) + moved
    report.verdict = "unreadable" if unreadable else verdict_for(kept, report.format)
    report.suppression = Suppression(files=loaded.files, rules=rules, warnings=warnings)


def verdict_without(report: Report) -> str:
    """What the verdict would be with every suppressed finding counted."""
    from forensics.pipeline import verdict_for

    if report.verdict == "unreadable":
        return report.verdict
    return verdict_for(list(report.findings) + [s.finding for s in report.suppressed], report.format)
