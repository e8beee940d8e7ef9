"""`forensics diff A B`: compare two images by what they contain, not by what their history says.

    compare(report_a, report_b, image_a=None, image_b=None, times=False, noise=None) -> Comparison

A is the reference (registry image, yesterday's image), B the image in question
(local rebuild, today's image). Three views:

- history (forensics.compare.history): created_by lines, as container-diff compares
  them; for reference only;
- content (forensics.compare.fs): the two merged filesystems, path by path; what
  decides the exit code;
- steps (forensics.compare.align): the first step whose layer changed something
  differently, and what.

Differences that honest rebuilds always produce are set apart as noise
(forensics.compare.noise), by rules printed with the result.
"""

from __future__ import annotations

from forensics import __version__
from forensics.compare.align import align, importance, rank, summary, to_model
from forensics.compare.fs import Replay, diff_fs
from forensics.compare.history import compare_history
from forensics.compare.model import (
    Comparison,
    ContentDiff,
    Divergence,
    NoiseRule,
    PathDiff,
    SideSummary,
    StepComparison,
)
from forensics.compare.noise import NORMALIZERS, build_rules, classify, timestamp_candidates
from forensics.findings import SEVERITY_ORDER, Code, finding, sort_findings
from forensics.models import Finding, Image, Report
from forensics.verify.refs import short_name

RAISES: tuple[Code, ...] = ("compare.content-differs", "compare.history-equal-content-differs")

MAX_PATH_FINDINGS = 1000

__all__ = ["compare", "select_image", "SelectionError", "Comparison", "build_rules"]


class SelectionError(ValueError):
    """The image to compare cannot be chosen (none or several match)."""


# ------------------------------------------------------------------ choosing the image

_norm_ref = short_name


def _split_ref(r: str) -> tuple[str, str | None]:
    last = r.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = r.rsplit(":", 1)
        return name, tag
    return r, None


def _ref_matches(want: str, refs: list[str]) -> bool:
    """Exact (docker.io/library/ ignored), by bare tag either way, or name alone for :latest."""
    w = _norm_ref(want)
    wn, wt = _split_ref(w)
    for ref in refs:
        r = _norm_ref(ref)
        rn, rt = _split_ref(r)
        if r == w:
            return True
        if "/" not in w and ":" not in w and rt == w:  # --image 2.4.1
            return True
        if "/" not in r and ":" not in r and wt == r:  # ref.name holds a bare tag
            return True
        if wt is None and rn == wn and rt in (None, "latest"):
            return True
    return False


def _platform_of(img: Image) -> str | None:
    if img.platform:
        return img.platform
    c = img.config
    if c and c.os and c.architecture:
        return "/".join(x for x in (c.os, c.architecture, c.variant) if x)
    return None


def _platform_matches(want: str, img: Image) -> bool:
    p = _platform_of(img)
    if not p:
        return False
    w = want.strip().lower()
    p = p.lower()
    return p == w or p.startswith(w + "/")


def describe_images(report: Report) -> str:
    rows = []
    for img in report.images:
        rows.append(
            f"  [{img.index}] {', '.join(img.refs) or '(untagged)'}  {_platform_of(img) or '-'}  "
            f"config {img.config_digest or '-'}"
        )
    return "\n".join(rows)


def select_image(
    report: Report, ref: str | None = None, platform: str | None = None, other: Image | None = None
) -> int:
    """Index of the image to compare. Raises SelectionError when it is not unambiguous."""
    imgs = list(report.images)
    if not imgs:
        raise SelectionError(f"{report.input.path}: the archive holds no image")
    cands = imgs
    if ref:
        want = ref.strip()
        by_ref = [i for i in cands if _ref_matches(want, i.refs)]
        if not by_ref and want.startswith("sha256:") and len(want) >= 7 + 8:
            by_ref = [
                i
                for i in cands
                if any(
                    (d or "").startswith(want) for d in (i.config_digest, i.manifest_digest, i.declared_config_digest)
                )
            ]
        if not by_ref and want.lstrip("#").isdigit():
            n = int(want.lstrip("#"))
            by_ref = [i for i in cands if i.index == n]
        if not by_ref:
            raise SelectionError(
                f"{report.input.path}: no image matches --image {ref!r}; it holds:\n" + describe_images(report)
            )
        cands = by_ref
    if platform:
        by_pf = [i for i in cands if _platform_matches(platform, i)]
        if not by_pf:
            raise SelectionError(
                f"{report.input.path}: no image for platform {platform!r}; it holds:\n" + describe_images(report)
            )
        cands = by_pf
    if len(cands) > 1 and other is not None and _platform_of(other):
        same = [i for i in cands if _platform_of(i) == _platform_of(other)]
        if len(same) == 1:
            cands = same
    if len(cands) > 1 and other is not None and other.refs:
        same = [i for i in cands if any(_ref_matches(r, i.refs) for r in other.refs)]
        if len(same) == 1:
            cands = same
    if len(cands) > 1:
        raise SelectionError(
            f"{report.input.path} holds {len(cands)} matching images; choose one with --image REF "
            "or --platform OS/ARCH:\n" + describe_images(report)
        )
    return cands[0].index


# ------------------------------------------------------------------ the comparison


def _position(report: Report, index: int) -> int:
    for pos, img in enumerate(report.images):
        if img.index == index:
            return pos
    raise SelectionError(f"{report.input.path}: no image {index}")


def _side(report: Report, pos: int, replay: Replay) -> SideSummary:
    img = report.images[pos]
    counts = {s.value: 0 for s in SEVERITY_ORDER}
    for f in report.findings:
        counts[f.severity.value] += 1
    return SideSummary(
        input=report.input,
        format=report.format,
        verdict=report.verdict,
        image=img.index,
        images=len(report.images),
        refs=list(img.refs),
        platform=_platform_of(img),
        manifest_digest=img.manifest_digest,
        config_digest=img.config_digest,
        layers=len(img.layers),
        diff_ids=[layer.diff_id for layer in img.layers],
        missing_layers=replay.missing,
        history_entries=len(img.history),
        files=len(replay.final),
        findings=list(report.findings),
        finding_counts={k: v for k, v in counts.items() if v},
    )


class _Normalized:
    """Content equality after masking timestamps; reads the needed bytes once per side."""

    def __init__(self, ra: Report, pa: int, rb: Report, pb: int, rules: list[NoiseRule], diffs: list[PathDiff]):
        from forensics.compare.reread import read_files

        want_a: dict[int, set[str]] = {}
        want_b: dict[int, set[str]] = {}
        for d in diffs:
            if timestamp_candidates(d, rules) is None:
                continue
            if d.a and d.a.layer is not None:
                want_a.setdefault(d.a.layer, set()).add(d.path)
            if d.b and d.b.layer is not None:
                want_b.setdefault(d.b.layer, set()).add(d.path)
        self.bytes_a = read_files(ra, pa, want_a) if want_a else {}
        self.bytes_b = read_files(rb, pb, want_b) if want_b else {}
        wanted = sum(len(v) for v in want_a.values()) + sum(len(v) for v in want_b.values())
        self.unread = len(self.bytes_a) + len(self.bytes_b) < wanted
        self._cache: dict[tuple, bool] = {}

    def __call__(self, rule: NoiseRule, d: PathDiff) -> bool:
        fn = NORMALIZERS.get(rule.normalizer or "")
        if fn is None or d.a is None or d.b is None:
            return False
        key = (rule.normalizer, d.a.sha256, d.b.sha256)
        if key not in self._cache:
            # a path with no layer (only in the merged view) had nothing read for it
            xa = self.bytes_a.get((d.a.layer, d.path)) if d.a.layer is not None else None
            xb = self.bytes_b.get((d.b.layer, d.path)) if d.b.layer is not None else None
            self._cache[key] = xa is not None and xb is not None and fn(xa) == fn(xb)
        return self._cache[key]


def _split(diffs: list[PathDiff], rules: list[NoiseRule], norm) -> tuple[list[PathDiff], list[PathDiff]]:
    real, noise = [], []
    for d in diffs:
        rule = classify(d, rules, norm)
        if rule is None:
            real.append(d)
        elif rule.when == "expected":
            real.append(d.model_copy(update={"expected": rule.pattern}))
        else:
            noise.append(d.model_copy(update={"noise": rule.pattern}))
    return real, noise


def _content(diffs: list[PathDiff]) -> ContentDiff:
    c = ContentDiff()
    for d in diffs:
        {"added": c.added, "removed": c.removed, "changed": c.changed}[d.change].append(d)
    return c


def _severity(d: PathDiff) -> str:
    i = importance(d)
    if i <= 4:
        return "high"
    if i <= 6:
        return "medium"
    return "low"


def _findings(cmp: Comparison, real: list[PathDiff], divergence_paths: set[str]) -> tuple[list[Finding], int]:
    out: list[Finding] = []
    div = cmp.divergence
    if cmp.history_equal and real:
        n = len(cmp.history.lines)
        where = f"; first at step {div.step} (`{div.label}`): {div.summary}" if div else ""
        missing = [
            f"{name} lacks layer(s) {', '.join(map(str, side.missing_layers))}"
            for name, side in (("A", cmp.a), ("B", cmp.b))
            if side.missing_layers
        ]
        if missing:
            where += f" ({'; '.join(missing)}: a merged filesystem is incomplete)"
        out.append(
            finding(
                "compare.history-equal-content-differs",
                "high" if missing else "critical",
                "history",
                (
                    f"all {n} created_by lines are identical"
                    if n
                    else "neither image has history lines, so comparing histories passes"
                )
                + f", yet {len(real)} path{'s' if len(real) != 1 else ''} differ"
                + where,
                history=div.step if div else None,
                layer=div.layer_b if div else None,
                evidence={
                    "history_lines": n,
                    "paths": len(real),
                    "step": div.step if div else None,
                    "layer_a": div.layer_a if div else None,
                    "layer_b": div.layer_b if div else None,
                    "first_paths": [d.path for d in (div.paths if div else rank(real))[:10]],
                },
            )
        )
    kept = rank(real)[:MAX_PATH_FINDINGS]
    for d in sorted(kept, key=lambda d: d.path):
        step = div.step if div and d.path in divergence_paths else None
        out.append(
            finding(
                "compare.content-differs",
                _severity(d),
                d.path,
                d.detail,
                path=d.path,
                history=step,
                evidence={
                    "change": d.change,
                    "what": d.what,
                    "a": {"layer": d.a.layer, "history": d.a.history} if d.a else None,
                    "b": {"layer": d.b.layer, "history": d.b.history} if d.b else None,
                },
            )
        )
    return sort_findings(out), max(0, len(real) - len(kept))


def _headline(cmp: Comparison, real: list[PathDiff], noise_n: int) -> str:
    hist = "history identical" if cmp.history_equal else "history differs"
    noise = f"; {noise_n} rebuild-noise difference{'s' if noise_n != 1 else ''} set apart" if noise_n else ""
    if not real:
        if cmp.same_image:
            return f"same image (identical layers), {hist}, content identical{noise}"
        return f"{hist}, content identical{noise}"
    div = cmp.divergence
    n = len(real)
    count = f"{n} path{'s' if n != 1 else ''} differ"
    if div is not None:
        total = "" if n == div.paths_total else f"; {count} in all"
        return f"{hist}, content differs at step {div.step} (`{div.label}`): {div.summary}{total}{noise}"
    return f"{hist}, content differs: {summary(real)}; {count} in all{noise}"


def compare(
    report_a: Report,
    report_b: Report,
    image_a: int | None = None,
    image_b: int | None = None,
    times: bool = False,
    noise: list[NoiseRule] | None = None,
) -> Comparison:
    """Compare image `image_a` of report_a with `image_b` of report_b (default: the only image)."""
    if image_a is None:
        image_a = select_image(report_a, other=report_b.images[0] if len(report_b.images) == 1 else None)
    if image_b is None:
        image_b = select_image(report_b, other=report_a.images[_position(report_a, image_a)])
    pa, pb = _position(report_a, image_a), _position(report_b, image_b)
    ia, ib = report_a.images[pa], report_b.images[pb]
    rules = build_rules() if noise is None else list(noise)

    ra, rb = Replay(ia), Replay(ib)
    hist = compare_history(ia, ib)
    raw_fs = diff_fs(ra, rb, times=times)
    pairs = {
        line.a_index: line.b_index
        for line in hist.lines
        if line.status in ("equal", "changed") and line.a_index is not None and line.b_index is not None
    }
    raw_steps = align(ra, rb, times=times, history_pairs=pairs)

    norm = _Normalized(report_a, pa, report_b, pb, rules, raw_fs + [d for s in raw_steps for d in s.diffs])
    real, noise_diffs = _split(raw_fs, rules, norm)
    steps: list[StepComparison] = []
    step_real: list[list[PathDiff]] = []
    for raw in raw_steps:
        s_real, s_noise = _split(raw.diffs, rules, norm)
        steps.append(to_model(raw, s_real, s_noise))
        step_real.append(s_real)
    # The first step that changed something differently, preferring one whose difference
    # is still there at the end (a step that differs only on the way, when a later step
    # evens it out, is shown in the steps but does not explain the content difference).
    divergence: Divergence | None = None
    if real:
        final = {d.path for d in real}
        k = next((k for k, sr in enumerate(step_real) if any(d.path in final for d in sr)), None)
        if k is None:
            k = next((k for k, sr in enumerate(step_real) if sr), None)
        if k is not None:
            step = steps[k]
            step.first_divergence = True
            divergence = Divergence(
                step=step.a_history if step.a_history is not None else (step.b_history or 0),
                b_step=step.b_history,
                created_by=step.created_by,
                label=step.label,
                layer_a=step.a_layer,
                layer_b=step.b_layer,
                paths=step.paths,
                paths_total=step.paths_total,
                summary=summary(step_real[k]),
            )

    same_image = bool(ia.config_digest and ia.config_digest == ib.config_digest) or (
        bool(ia.layers)
        and [layer.diff_id for layer in ia.layers] == [layer.diff_id for layer in ib.layers]
        and all(layer.diff_id for layer in ia.layers)
    )
    notes: list[str] = []
    for side, r in (("A", ra), ("B", rb)):
        if r.missing:
            notes.append(
                f"{side}: layer(s) {', '.join(map(str, r.missing))} missing or unreadable: "
                "its merged filesystem is incomplete"
            )
    if not ia.history and not ib.history:
        notes.append("neither image has history: steps are paired by layer position")
    if norm.unread:
        notes.append(
            "some files could not be re-read to mask timestamps inside them (stdin input or damage); "
            "those differences count as real"
        )
    cmp = Comparison(
        version=__version__,
        a=_side(report_a, pa, ra),
        b=_side(report_b, pb, rb),
        same_image=same_image,
        times=times,
        history=hist,
        history_equal=hist.equal,
        content=_content(real),
        noise=_content(noise_diffs),
        noise_rules=rules,
        steps=steps,
        divergence=divergence,
        content_equal=not real,
        verdict="same" if not real else "differs",
        headline="",
        notes=notes,
    )
    cmp.findings, cmp.findings_omitted = _findings(
        cmp, real, {d.path for d in divergence.paths} if divergence else set()
    )
    cmp.headline = _headline(cmp, real, len(noise_diffs))
    return cmp
