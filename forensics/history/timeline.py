"""history.time-anomaly: history going backwards, dated in the future, files newer than their step.

Timestamps are weak evidence (SOURCE_DATE_EPOCH, epoch-0 builders, copied mtimes),
so the rules only fire on what an honest builder cannot produce, and file mtimes
count only when they are later than the step that *follows* (or the image).
"""

from __future__ import annotations

from datetime import UTC, datetime

from forensics.findings import Code, finding
from forensics.models import Finding, Image

RAISES: tuple[Code, ...] = ("history.time-anomaly",)

SLACK = 60.0  # seconds: clocks, rounding, commit latency
EPOCH_FLOOR = 315532800.0  # 1980-01-01: anything earlier is a reproducible-build stamp, not a time


def parse_time(text: str | None) -> float | None:
    if not text:
        return None
    t = text.strip()
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    # Python 3.11 handles up to 6 fractional digits; Go writes 9.
    if "." in t:
        head, _, rest = t.partition(".")
        frac = "".join(ch for ch in rest if ch.isdigit())
        tz = rest[len(frac) :]
        t = f"{head}.{frac[:6]}{tz}"
    try:
        dt = datetime.fromisoformat(t)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


MAX_TIME = 253402300799.0  # 9999-12-31T23:59:59Z: beyond this a time is not a date


def _iso(ts: float) -> str:
    if not (-62135596800.0 <= ts <= MAX_TIME):  # also false for nan
        return f"{ts!r} (not a representable date)"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_times(img: Image, now: float, archive_time: float | None = None) -> list[Finding]:
    """`archive_time`: the newest member mtime of the archive (when it was written, for
    tools that stamp members; None when every stamp is an epoch placeholder)."""
    out: list[Finding] = []
    times = [parse_time(h.created) for h in img.history]
    prev_i, prev_t = 0, None  # prev_i is read only once prev_t is set
    for i, t in enumerate(times):
        if t is None or t < EPOCH_FLOOR:
            continue
        if t > now + 86400:
            out.append(
                finding(
                    "history.time-anomaly",
                    "medium",
                    f"history[{i}]",
                    # the analysis time itself is in the report's analysis block: quoting it here would
                    # make the finding (and its id) differ from run to run
                    f"history[{i}] is dated {img.history[i].created}, more than a day after this analysis "
                    "ran (analysis.started): a date in the future was written by hand",
                    image=img.index,
                    history=i,
                )
            )
        elif archive_time is not None and t > archive_time + SLACK:
            out.append(
                finding(
                    "history.time-anomaly",
                    "medium",
                    f"history[{i}]",
                    f"history[{i}] is dated {img.history[i].created}, after the archive was written "
                    f"(its newest member is dated {_iso(archive_time)}): the history was edited later",
                    image=img.index,
                    history=i,
                )
            )
        if prev_t is not None and t + SLACK < prev_t:
            out.append(
                finding(
                    "history.time-anomaly",
                    "medium",
                    f"history[{i}]",
                    f"history[{i}] is dated {img.history[i].created}, before history[{prev_i}] "
                    f"({img.history[prev_i].created}): history goes backwards",
                    image=img.index,
                    history=i,
                )
            )
        prev_i, prev_t = i, t
    # Files newer than the step after the one that wrote them cannot come from an honest build.
    owners = [h for h in img.history if h.layer_index is not None]
    image_created = parse_time(img.config.created) if img.config else None
    for k, h in enumerate(owners):
        t, layer_index = times[h.index], h.layer_index
        if t is None or t < EPOCH_FLOOR or layer_index is None or layer_index >= len(img.layers):
            continue
        later = [x for o in owners[k + 1 :] if (x := times[o.index]) is not None and x >= EPOCH_FLOOR]
        bound = later[0] if later else image_created
        files = img.layers[layer_index].files
        newest = max((f for f in files if f.mtime >= EPOCH_FLOOR), key=lambda f: f.mtime, default=None)
        if newest is None or newest.mtime <= t + SLACK:
            continue
        strong = bound is not None and newest.mtime > bound + SLACK
        out.append(
            finding(
                # File mtimes are weak evidence (copied mtimes, unclamped builds): low severity.
                "history.time-anomaly",
                "low",
                f"history[{h.index}]",
                f"layer {h.layer_index} holds {newest.path} dated {_iso(newest.mtime)}, after its step "
                f"history[{h.index}] ({img.history[h.index].created})"
                + (f" and after the next step ({_iso(bound)})" if strong and bound is not None else ""),
                image=img.index,
                history=h.index,
                layer=h.layer_index,
                path=newest.path,
            )
        )
    return out
