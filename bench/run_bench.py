#!/usr/bin/env python3
"""Benchmark: the one-pass analyzer against the single-thread floor.

For a gzip image and a zstd image (~1 GiB of uncompressed layers each) it
measures, in the same run and on the same page-cached file:

  floor  one thread reads the file once, sha256 of every blob, decompresses
         every layer blob with the libraries the tool uses (ISA-L / zstandard)
         and sha256 of the decompressed stream. Nothing else.
  tool   forensics.pipeline.analyze(path, history=False) in a child process
         (wall time around the call, peak RSS from getrusage in that child),
         then analyze(path) with history on, then the CLI end to end under
         /usr/bin/time -v.

ratio = floor s / tool s (target >= 0.9), tool throughput in MiB/s of
uncompressed layer data (target >= 300), peak RSS in MiB (target < 150).

    .venv/bin/python bench/run_bench.py              # 1 GiB images
    .venv/bin/python bench/run_bench.py --quick      # 200 MiB, smoke run
    .venv/bin/python bench/run_bench.py --size 2G --keep --repeat 3

Results: a table on stdout and bench/out/results.json. See bench/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import zstandard

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SHARED_MAKE_IMAGE = (REPO / ".." / "shared" / "bench" / "make_image.py").resolve()
FALLBACK = HERE / "gen_image.py"
MiB = 1 << 20
CHUNK = 1 << 20
TARGETS = {
    "ratio": 0.9,
    "mib_s": 300.0,
    "rss_mib": 150.0,
    "history_ratio": 1.1,
    "rss_base_mib": 100.0,
    "rss_kib_per_entry": 0.5,
}

try:
    from isal import isal_zlib as _zlib

    GZIP_LIB = "isal"
except ImportError:  # pragma: no cover
    import zlib as _zlib

    GZIP_LIB = "zlib"

# ----------------------------------------------------------------------------- images

GiB = 1 << 30
# The issue-11 image set (--images): what each preset asks make_image.py for.
PRESETS: dict[str, dict] = {
    "gzip": {"size": GiB, "compression": "gzip", "what": "1 GiB gzip, ~53k entries"},
    "zstd": {"size": GiB, "compression": "zstd", "what": "1 GiB zstd"},
    "4g": {"size": 4 * GiB, "compression": "gzip", "what": "4 GiB gzip"},
    "375k": {"size": 512 * MiB, "compression": "gzip", "files": 222000, "what": "~377,000 small entries, gzip"},
}


def parse_size(text: str) -> int:
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    if t and t[-1] in mult:
        return int(float(t[:-1]) * mult[t[-1]])
    return int(t)


def size_label(n: int) -> str:
    for suffix, m in (("T", 1 << 40), ("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n % m == 0:
            return f"{n // m}{suffix}"
    return str(n)


def log(*a) -> None:
    print(*a, file=sys.stderr, flush=True)


def ensure_image(
    out: Path, size: int, compression: str, seed: int | None, files: int | None = None, docker: bool = True
) -> tuple[Path, dict, bool]:
    """Return (image path, sidecar, generated now). Reuses an image with the same parameters.
    `files`: regular files over all layers (make_image's --files; default ~30 per MiB);
    `docker`: also a legacy docker-archive of the same layers beside it (for skopeo's
    docker-archive row)."""
    generator = "make_image" if SHARED_MAKE_IMAGE.is_file() else "fallback"
    stem = (
        f"{generator}-{compression}-{size_label(size)}"
        + (f"-f{files}" if files is not None else "")
        + (f"-s{seed}" if seed is not None else "")
    )
    img, meta = out / f"{stem}.oci.tar", out / f"{stem}.json"
    params: dict = {"generator": generator, "compression": compression, "size": size}
    if seed is not None:
        params["seed"] = seed
    if files is not None:
        params["files"] = files
    docker_img = out / f"{stem}.docker.tar"
    if generator == "make_image" and docker:
        params["docker"] = True
    if img.is_file() and meta.is_file():
        try:
            side = json.loads(meta.read_text())
            if side.get("params") == params and (not params.get("docker") or docker_img.is_file()):
                log(f"reusing {img}")
                return img, side, False
        except (OSError, ValueError):
            pass
    part = out / f"{stem}.oci.tar.part"
    if generator == "make_image":
        cmd = [
            sys.executable,
            str(SHARED_MAKE_IMAGE),
            "--size",
            str(size),
            "--compression",
            compression,
            "--oci",
            str(part),
            "--tmpdir",
            str(out),
        ]
        if files is not None:
            cmd += ["--files", str(files)]
        if params.get("docker"):
            cmd += ["--docker", str(docker_img) + ".part"]
    else:
        cmd = [sys.executable, str(FALLBACK), "--size", str(size), "--compression", compression, "--oci", str(part)]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    log(f"generating {img.name} with {generator} ...")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        part.unlink(missing_ok=True)
        raise SystemExit(f"image generation failed ({proc.returncode}): {' '.join(cmd)}")
    try:
        summary = json.loads(proc.stdout)
    except ValueError:
        summary = {}
    os.replace(part, img)
    if params.get("docker"):
        os.replace(str(docker_img) + ".part", docker_img)
    side = {"generator": generator, "params": params, "seconds": round(time.perf_counter() - t0, 1), "summary": summary}
    meta.write_text(json.dumps(side, indent=1))
    log(f"generated {img.name} in {side['seconds']}s")
    return img, side, True


def warm_cache(path: Path) -> None:
    """Read the file once so floor and tool both start from the page cache."""
    with open(path, "rb") as f:
        while f.read(8 * MiB):
            pass


# ----------------------------------------------------------------------------- machine load

HZ = os.sysconf("SC_CLK_TCK")


def _proc_stat() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, all cores."""
    try:
        with open("/proc/stat") as f:
            vals = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return 0.0, 0.0
    idle = vals[3] + vals[4]
    return (sum(vals) - idle) / HZ, sum(vals) / HZ


def _own_cpu() -> float:
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


class Load:
    """CPU used by *other* processes while a measurement runs, in cores (2 cores = 2.0)."""

    def __enter__(self) -> Load:
        self.busy0, _ = _proc_stat()
        self.own0, self.t0 = _own_cpu(), time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        busy1, _ = _proc_stat()
        wall = time.perf_counter() - self.t0
        others = (busy1 - self.busy0) - (_own_cpu() - self.own0)
        self.others_cores = round(max(0.0, others) / wall, 2) if wall > 0 else None


def wait_idle(max_wait: float, cores: float = 0.25) -> float | None:
    """Wait (up to max_wait s) until the machine is idle: under `cores` busy over 1 s. Returns the last reading."""
    deadline = time.monotonic() + max_wait
    busy = None
    warned = False
    while True:
        b0, t0 = _proc_stat()[0], time.perf_counter()
        time.sleep(1.0)
        busy = (_proc_stat()[0] - b0) / (time.perf_counter() - t0)
        if busy <= cores or time.monotonic() >= deadline:
            return round(busy, 2)
        if not warned:
            log(f"  machine busy ({busy:.2f} cores used by other processes); waiting up to {max_wait:.0f}s")
            warned = True


# ----------------------------------------------------------------------------- floor


def _num(field: bytes) -> int:
    if field and field[0] & 0x80:
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\0", 1)[0].strip(b" \0")
    return int(text, 8) if text else 0


class _Member:
    """The content of one outer tar member; hashes the compressed bytes as they pass."""

    def __init__(self, f, size: int, first: bytes, h) -> None:
        self._f, self._left, self._first, self._h = f, size, first, h

    def read(self, n: int = CHUNK) -> bytes:
        if self._first:
            out, self._first = self._first, b""
            return out
        if self._left <= 0:
            return b""
        data = self._f.read(min(n, self._left))
        if not data:
            raise EOFError("truncated outer tar")
        self._left -= len(data)
        self._h.update(data)
        return data


def floor(path: Path) -> dict:
    """One thread, one read of the file: blob sha256 + decompress + sha256 of every layer."""
    sha = hashlib.sha256
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    blobs = compressed = uncompressed = 0
    diff_ids: list[str] = []
    with open(path, "rb") as f:
        while True:
            hdr = f.read(512)
            if len(hdr) < 512 or hdr.count(0) == 512:
                break
            size = _num(hdr[124:136])
            pad = (-size) % 512
            flag = hdr[156:157]
            if flag not in (b"0", b"\0", b"7") or size == 0:
                f.read(size + pad)  # pax/GNU headers, directories: nothing to hash
                continue
            blobs += 1
            compressed += size
            bh = sha()
            first = f.read(min(CHUNK, size))
            bh.update(first)
            m = _Member(f, size - len(first), first, bh)
            if first.startswith(b"\x1f\x8b"):
                uh, n = sha(), 0
                d = _zlib.decompressobj(wbits=31)
                while data := m.read(CHUNK):
                    while data:
                        out = d.decompress(data)
                        uh.update(out)
                        n += len(out)
                        data = b""
                        if d.eof and d.unused_data.startswith(b"\x1f\x8b"):  # next gzip member
                            data, d = d.unused_data, _zlib.decompressobj(wbits=31)
                diff_ids.append("sha256:" + uh.hexdigest())
                uncompressed += n
            elif first.startswith(b"\x28\xb5\x2f\xfd"):
                uh, n = sha(), 0
                r = zstandard.ZstdDecompressor(max_window_size=1 << 31).stream_reader(
                    m, read_size=CHUNK, read_across_frames=True
                )
                while out := r.read(CHUNK):
                    uh.update(out)
                    n += len(out)
                diff_ids.append("sha256:" + uh.hexdigest())
                uncompressed += n
            else:
                while m.read(CHUNK):
                    pass
                if len(first) >= 262 and first[257:262] == b"ustar":  # uncompressed layer
                    diff_ids.append("sha256:" + bh.hexdigest())
                    uncompressed += size
            f.read(pad)
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return {
        "seconds": wall,
        "cpu_seconds": cpu,
        "blobs": blobs,
        "compressed_bytes": compressed,
        "uncompressed_bytes": uncompressed,
        "diff_ids": diff_ids,
    }


# ----------------------------------------------------------------------------- tool

CHILD = r"""
import json, resource, sys, time
path, history = sys.argv[1], sys.argv[2] == "1"
if len(sys.argv) > 3 and sys.argv[3]:
    sys.setswitchinterval(float(sys.argv[3]))  # experiment: GIL hand-off latency (default 0.005)
as_json = len(sys.argv) > 4 and sys.argv[4] == "1"
from forensics.pipeline import analyze
ru = resource.getrusage(resource.RUSAGE_SELF)
base_rss = ru.ru_maxrss
cpu0 = ru.ru_utime + ru.ru_stime
t0 = time.perf_counter()
out = {"error": None}
try:
    rep = analyze(path, history=history, command=["bench"])
    out["verdict"] = rep.verdict
    out["findings"] = len(rep.findings)
    out["diff_ids"] = [l.diff_id for im in rep.images for l in im.layers]
    out["entries"] = sum(l.entries for im in rep.images for l in im.layers)
    out["input_size"] = rep.input.size
    if as_json:  # the report as --json writes it: streamed (forensics.serialize.write_json)
        import os
        from forensics.serialize import write_json
        with open(os.devnull, "wb") as fh:
            write_json(rep, fh.write)
except BaseException as exc:
    out["error"] = f"{type(exc).__name__}: {exc}"
out["seconds"] = time.perf_counter() - t0
ru = resource.getrusage(resource.RUSAGE_SELF)
out["cpu_seconds"] = ru.ru_utime + ru.ru_stime - cpu0
out["maxrss_kib"] = ru.ru_maxrss
out["base_rss_kib"] = base_rss
ch = resource.getrusage(resource.RUSAGE_CHILDREN)
out["worker_cpu_seconds"] = ch.ru_utime + ch.ru_stime  # the layer workers (forensics.archive.parallel)
out["worker_maxrss_kib"] = ch.ru_maxrss  # the largest worker's peak
out["cpu_seconds"] += out["worker_cpu_seconds"]
print(json.dumps(out))
"""


SWITCH_INTERVAL: str = ""  # --tool-switchinterval


def tool(path: Path, history: bool, workers: int | None = None, as_json: bool = False) -> dict:
    env = dict(os.environ)
    if workers is not None:
        env["FORENSICS_WORKERS"] = str(workers)  # 1: the serial pass, for the comparison
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), "1" if history else "0", SWITCH_INTERVAL, "1" if as_json else "0"],
        capture_output=True,
        text=True,
        env=env,
    )
    try:
        res = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": f"child exited {proc.returncode}: {proc.stderr.strip()[-2000:]}"}
    res["rss_mib"] = res["maxrss_kib"] / 1024
    res["base_rss_mib"] = res["base_rss_kib"] / 1024
    return res


def forensics_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("forensics")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "forensics"]


def _elapsed(text: str) -> float | None:
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", text)
    if not m:
        return None
    return int(m.group(1) or 0) * 3600 + int(m.group(2)) * 60 + float(m.group(3))


def cli(path: Path) -> dict:
    cmd = forensics_cmd() + ["scan", str(path), "--json", os.devnull, "-q"]
    timer = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
    full = ([timer, "-v"] if timer else []) + cmd
    t0 = time.perf_counter()
    proc = subprocess.run(full, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    out = {
        "command": " ".join(cmd),
        "exit_code": proc.returncode,
        "seconds": wall,
        "rss_mib": None,
        "timer": bool(timer),
    }
    if timer:
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
        out["rss_mib"] = int(m.group(1)) / 1024 if m else None
        out["time_v_seconds"] = _elapsed(proc.stderr)
        code = re.search(r"Exit status: (\d+)", proc.stderr)
        if code:
            out["exit_code"] = int(code.group(1))
    if out["exit_code"] not in (0, 1):  # 1 = findings at or above --fail-on: still a completed run
        out["error"] = proc.stderr.strip()[-2000:]
    return out


# ----------------------------------------------------------------------------- peers


def _timed(cmd: list[str]) -> dict:
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = {
        "command": " ".join(cmd),
        "seconds": wall,
        "cpu_seconds": (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime),
        "exit_code": proc.returncode,
    }
    if proc.returncode:
        out["error"] = proc.stderr.strip()[-500:]
    return out


def peers(img: Path, idle: float) -> dict:
    """Other tools over the same image in the same run: what reading and checking it costs them.
    Each is skipped, with a message, if it is not installed."""
    import shutil
    import tempfile

    res: dict = {}
    docker = img.with_name(img.name.removesuffix(".oci.tar") + ".docker.tar")
    jobs = {
        "skopeo oci-archive -> oci": ("skopeo", lambda d: ["skopeo", "copy", f"oci-archive:{img}", f"oci:{d}/o:x"]),
        "skopeo docker-archive -> dir": (
            "skopeo",
            (lambda d: ["skopeo", "copy", f"docker-archive:{docker}", f"dir:{d}/d"]) if docker.is_file() else None,
        ),
        "umoci unpack": ("umoci", None),
    }
    for name, (exe, make) in jobs.items():
        if shutil.which(exe) is None:
            res[name] = {"skipped": f"{exe} not installed"}
            log(f"  {name}: skipped ({exe} not installed)")
            continue
        with tempfile.TemporaryDirectory(dir=img.parent) as d:
            if name == "umoci unpack":
                layout = Path(d) / "layout"
                layout.mkdir()
                subprocess.run(["tar", "-xf", str(img), "-C", str(layout)], check=False)
                wait_idle(idle)
                r = _timed(["umoci", "unpack", "--rootless", "--image", f"{layout}:{_ref(layout)}", f"{d}/bundle"])
                r["note"] = "after an untimed tar -xf of the archive (umoci reads a layout directory)"
            elif make is None:
                res[name] = {"skipped": f"no docker archive beside the image ({docker.name})"}
                log(f"  {name}: skipped (no {docker.name})")
                continue
            else:
                wait_idle(idle)
                r = _timed(make(d))
        res[name] = r
        log(f"  {name}: {r['seconds']:.2f}s exit {r['exit_code']}")
    return res


def _ref(layout: Path) -> str:
    try:
        idx = json.loads((layout / "index.json").read_text())
        return idx["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"]
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return "latest"


# ----------------------------------------------------------------------------- report


def mib_s(nbytes: int, seconds: float | None) -> float | None:
    return nbytes / MiB / seconds if seconds else None


def fmt(v, spec: str) -> str:
    if isinstance(v, (int, float)):
        return format(v, spec)
    return " " * int(re.match(r"\d+", spec).group())


HEAD = (
    f"{'image':<24} {'comp':<5} {'comp MiB':>9} {'unc MiB':>8} {'floor s':>8} {'floor MiB/s':>11} "
    f"{'tool s':>7} {'tool MiB/s':>10} {'ratio':>6} {'RSS MiB':>8}  targets"
)


def row(name, comp, cmib, umib, fs, fmbs, ts, tmbs, ratio, rss, note="") -> str:
    return (
        f"{name:<24} {comp:<5} {fmt(cmib, '9.1f')} {fmt(umib, '8.1f')} {fmt(fs, '8.2f')} {fmt(fmbs, '11.1f')} "
        f"{fmt(ts, '7.2f')} {fmt(tmbs, '10.1f')} {fmt(ratio, '6.2f')} {fmt(rss, '8.1f')}  {note}"
    )


def verdicts(ratio, mbs, rss) -> str:
    parts = []
    if ratio is not None:
        parts.append(f"ratio {'ok' if ratio >= TARGETS['ratio'] else 'MISS'}")
    if mbs is not None:
        parts.append(f"MiB/s {'ok' if mbs >= TARGETS['mib_s'] else 'MISS'}")
    if rss is not None:
        parts.append(f"RSS {'ok' if rss < TARGETS['rss_mib'] else 'MISS'}")
    return ", ".join(parts)


def render(results: list[dict]) -> str:
    lines = [HEAD, "-" * len(HEAD)]
    for r in results:
        fl, unc = r["floor"], r["uncompressed_bytes"]
        cm, um = r["compressed_bytes"] / MiB, unc / MiB
        for label, t in (
            ("tool (history off)", r["tool"]),
            ("tool (history on)", r.get("tool_history")),
            ("CLI scan, time -v", r.get("cli")),
        ):
            if t is None:
                continue
            name = r["name"] if label.startswith("tool (history off)") else "  " + label
            if t.get("error") and t.get("seconds") is None:
                lines.append(f"{name:<24} ERROR {t['error']}")
                continue
            ts = t.get("seconds")
            tm = mib_s(unc, ts)
            ratio = fl["seconds"] / ts if ts else None
            note = verdicts(ratio, tm, t.get("rss_mib"))
            noise = max(t.get("others_cores") or 0, fl.get("others_cores") or 0)
            if noise > 0.2:
                note += f"  NOISY (other processes: {noise:.2f} cores)"
            if t.get("error"):
                note += f"  ERROR: {t['error'][:200]}"
            if label.startswith("tool (history off)"):
                lines.append(
                    row(
                        name,
                        r["compression"],
                        cm,
                        um,
                        fl["seconds"],
                        mib_s(unc, fl["seconds"]),
                        ts,
                        tm,
                        ratio,
                        t.get("rss_mib"),
                        note,
                    )
                )
            else:
                lines.append(row(name, "", None, None, None, None, ts, tm, ratio, t.get("rss_mib"), note))
    lines.append(
        f"{'targets':<24} {'':<5} {'':>9} {'':>8} {'':>8} {'':>11} {'':>7} "
        f"{'>=' + str(int(TARGETS['mib_s'])):>10} {'>=' + str(TARGETS['ratio']):>6} "
        f"{'<' + str(int(TARGETS['rss_mib'])):>8}"
    )
    return "\n".join(lines)


def _mib(t: dict, key: str = "rss_mib") -> str:
    v = t.get(key)
    return f"{v:.0f}" if isinstance(v, (int, float)) else "-"


def targets(results: list[dict]) -> str:
    """The issue-11 targets, one block per image: the one-thread floor; the full analysis
    with history (wall, CPU, ratio to the floor, >= 1.1x); peak RSS without and with the
    JSON written (<= 100 MiB + 0.5 KiB per layer entry); the 375k-entry image in <= 8 CPU-s;
    the peers over the same archive. RSS is the parent's peak (`ru_maxrss`); the largest
    worker's peak is given beside it (workers and parent overlap only while layers are read)."""
    lines = []
    for r in results:
        fl = r["floor"]
        th, ts = r.get("tool_history") or {}, r.get("tool_history_serial") or {}
        tj, c = r.get("tool_history_json") or {}, r.get("cli") or {}
        entries = (r["tool"] or {}).get("entries") or 0
        budget = TARGETS["rss_base_mib"] + TARGETS["rss_kib_per_entry"] * entries / 1024
        lines.append(
            f"{r['name']}: {entries} layer entries; floor {fl['seconds']:.2f}s wall, {fl['cpu_seconds']:.2f} CPU-s"
        )
        if th.get("seconds"):
            ratio = fl["seconds"] / th["seconds"]
            lines.append(
                f"  history on: {th['seconds']:.2f}s wall, {th['cpu_seconds']:.2f} CPU-s, {ratio:.2f}x floor "
                f"(target >= {TARGETS['history_ratio']}x: {'ok' if ratio >= TARGETS['history_ratio'] else 'MISS'})"
                + (
                    f"; serial pass {ts['seconds']:.2f}s, {ts['cpu_seconds']:.2f} CPU-s = {fl['seconds'] / ts['seconds']:.2f}x"
                    if ts.get("seconds")
                    else ""
                )
            )
            if entries >= 300_000:
                lines.append(
                    f"  CPU for {entries} entries: {th['cpu_seconds']:.2f} CPU-s "
                    f"(target <= 8: {'ok' if th['cpu_seconds'] <= 8 else 'MISS'})"
                )
        for label, t in (("peak RSS, no JSON", th), ("peak RSS, JSON written (write_json)", tj)):
            if t.get("rss_mib"):
                lines.append(
                    f"  {label}: {t['rss_mib']:.0f} MiB, largest worker {t.get('worker_maxrss_kib', 0) / 1024:.0f} MiB"
                    f" (target <= {budget:.0f} MiB: {'ok' if t['rss_mib'] <= budget else 'MISS'})"
                )
        if c.get("rss_mib"):
            lines.append(
                f"  CLI scan --json: {c['seconds']:.2f}s wall, peak RSS {c['rss_mib']:.0f} MiB "
                f"(target <= {budget:.0f} MiB: {'ok' if c['rss_mib'] <= budget else 'MISS'})"
            )
        for name, p in (r.get("peers") or {}).items():
            if "skipped" in p:
                lines.append(f"  {name}: skipped, {p['skipped']}")
                continue
            if p.get("exit_code"):  # umoci 0.4 refuses +zstd layers, for one: not a time to compare
                why = (p.get("error") or "").strip().splitlines()[-1:] or [""]
                lines.append(f"  {name}: FAILED, exit {p['exit_code']} after {p['seconds']:.2f}s: {why[0][:160]}")
                continue
            ours = th.get("seconds")
            cmp = (
                f"; ours {'faster' if ours < p['seconds'] else 'SLOWER'} ({ours:.2f}s, {th['cpu_seconds']:.2f} CPU-s)"
                if ours
                else ""
            )
            cpu = f", {p['cpu_seconds']:.2f} CPU-s" if p.get("cpu_seconds") is not None else ""
            lines.append(f"  {name}: {p['seconds']:.2f}s wall{cpu}, exit {p['exit_code']}{cmp}")
    return "\n".join(lines)


def details(results: list[dict]) -> str:
    out = []
    for r in results:
        fl, t = r["floor"], r["tool"]
        s = f"{r['name']}: floor cpu {fl['cpu_seconds']:.2f}s / wall {fl['seconds']:.2f}s; {fl['blobs']} blobs"
        if t.get("seconds") is not None and not t.get("error"):
            s += (
                f"; tool cpu {t['cpu_seconds']:.2f}s / wall {t['seconds']:.2f}s "
                f"(parallelism {t['cpu_seconds'] / t['seconds']:.2f}), "
                f"RSS after imports {t['base_rss_mib']:.1f} MiB, {t.get('entries')} layer entries, "
                f"verdict {t.get('verdict')}, diff_ids match floor: {r.get('diff_ids_match')}"
            )
        if r.get("cli") and r["cli"].get("seconds") is not None:
            s += f"; CLI exit {r['cli']['exit_code']}"
        s += (
            f"; other processes used {fl.get('others_cores')} cores during the best floor run, "
            f"{t.get('others_cores')} during the best tool run"
        )
        out.append(s)
    return "\n".join(out)


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default=None, help="uncompressed layer total per image, K/M/G suffixes (default 1G)")
    ap.add_argument("--quick", action="store_true", help="200M images: a fast smoke run")
    ap.add_argument("--keep", action="store_true", help="keep the images generated by this run (for reuse)")
    ap.add_argument("--out", default=str(HERE / "out"), help="directory for images and results.json")
    ap.add_argument(
        "--compression",
        action="append",
        choices=["gzip", "zstd"],
        help="only these (repeatable; default gzip and zstd)",
    )
    ap.add_argument("--seed", type=int, default=None, help="generator seed (default: the generator's)")
    ap.add_argument(
        "--repeat", type=int, default=3, help="measure floor and tool N times, keep the fastest (default 3)"
    )
    ap.add_argument(
        "--wait-idle",
        type=float,
        default=60.0,
        metavar="S",
        help="before each measurement wait up to S seconds for other processes to go quiet "
        "(under 0.25 busy cores; default 60, 0 = don't wait)",
    )
    ap.add_argument(
        "--images",
        default=None,
        metavar="LIST",
        help="comma-separated presets instead of --size/--compression: "
        + ", ".join(f"{k} ({v['what']})" for k, v in PRESETS.items())
        + "; 'all' for every one",
    )
    ap.add_argument("--no-history", action="store_true", help="skip the history=True runs")
    ap.add_argument("--no-serial", action="store_true", help="skip the FORENSICS_WORKERS=1 history run")
    ap.add_argument("--no-json", action="store_true", help="skip the history run that also writes the JSON")
    ap.add_argument("--no-peers", action="store_true", help="skip skopeo and umoci")
    ap.add_argument("--no-cli", action="store_true", help="skip the CLI end-to-end run")
    ap.add_argument(
        "--tool-switchinterval",
        type=float,
        default=None,
        metavar="S",
        help="experiment: sys.setswitchinterval(S) in the tool's child process before analyze() "
        "(CPython default 0.005; the CLI run is not affected)",
    )
    a = ap.parse_args(argv)
    global SWITCH_INTERVAL
    if a.tool_switchinterval is not None:
        SWITCH_INTERVAL = repr(a.tool_switchinterval)

    size = parse_size(a.size or ("200M" if a.quick else "1G"))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.images:
        names = list(PRESETS) if a.images == "all" else [n.strip() for n in a.images.split(",") if n.strip()]
        unknown = [n for n in names if n not in PRESETS]
        if unknown:
            ap.error(f"unknown --images {', '.join(unknown)}; choose from {', '.join(PRESETS)} or all")
        specs = [(PRESETS[n]["size"], PRESETS[n]["compression"], PRESETS[n].get("files")) for n in names]
    else:
        specs = [(size, comp, None) for comp in (a.compression or ["gzip", "zstd"])]
    results: list[dict] = []
    generated: list[Path] = []
    for size, comp, files in specs:
        img, side, new = ensure_image(out, size, comp, a.seed, files)
        if new:
            generated.append(img)
        log(f"[{img.name}] warming the page cache")
        warm_cache(img)
        load = [round(x, 2) for x in os.getloadavg()]
        best_floor = best_tool = None
        runs: dict[str, list] = {"floor": [], "tool": []}
        for i in range(max(1, a.repeat)):
            log(f"[{img.name}] floor (run {i + 1})")
            idle = wait_idle(a.wait_idle)
            with Load() as ld:
                fl = floor(img)
            fl["busy_before"], fl["others_cores"] = idle, ld.others_cores
            log(
                f"  {fl['seconds']:.2f}s, {mib_s(fl['uncompressed_bytes'], fl['seconds']):.1f} MiB/s"
                f" (other processes: {ld.others_cores} cores)"
            )
            runs["floor"].append({"seconds": round(fl["seconds"], 3), "others_cores": ld.others_cores})
            if best_floor is None or fl["seconds"] < best_floor["seconds"]:
                best_floor = fl
            log(f"[{img.name}] tool analyze(history=False) (run {i + 1})")
            idle = wait_idle(a.wait_idle)
            with Load() as ld:
                t = tool(img, history=False)
            t["busy_before"], t["others_cores"] = idle, ld.others_cores
            log(
                f"  {t.get('seconds', 0):.2f}s, rss {t.get('rss_mib', 0):.1f} MiB"
                f" (other processes: {ld.others_cores} cores)"
                if not t.get("error")
                else f"  error: {t['error']}"
            )
            runs["tool"].append(
                {
                    "seconds": round(t["seconds"], 3) if t.get("seconds") else None,
                    "rss_mib": t.get("rss_mib"),
                    "others_cores": ld.others_cores,
                }
            )
            if best_tool is None or (
                not t.get("error") and (best_tool.get("error") or t["seconds"] < best_tool["seconds"])
            ):
                best_tool = t
        rss = [r["rss_mib"] for r in runs["tool"] if r.get("rss_mib")]
        best_tool["rss_mib_max_over_runs"] = max(rss) if rss else None
        rec = {
            "name": img.name.removesuffix(".oci.tar"),
            "path": str(img),
            "compression": comp,
            "generator": side.get("generator"),
            "size_param": size,
            "compressed_bytes": best_floor["compressed_bytes"],
            "file_bytes": img.stat().st_size,
            "uncompressed_bytes": best_floor["uncompressed_bytes"],
            "loadavg_before": load,
            "floor_runs": runs["floor"],
            "tool_runs": runs["tool"],
            "floor": {k: v for k, v in best_floor.items() if k != "diff_ids"},
            "tool": best_tool,
        }
        rec["floor"]["mib_s"] = mib_s(rec["uncompressed_bytes"], best_floor["seconds"])
        rec["diff_ids_match"] = (
            sorted(set(best_tool.get("diff_ids") or [])) == sorted(set(best_floor["diff_ids"]))
            if not best_tool.get("error")
            else None
        )
        if not best_tool.get("error"):
            best_tool["mib_s"] = mib_s(rec["uncompressed_bytes"], best_tool["seconds"])
            best_tool["ratio"] = best_floor["seconds"] / best_tool["seconds"]
        if not a.no_history:
            log(f"[{img.name}] tool analyze(history=True)")
            idle = wait_idle(a.wait_idle)
            with Load() as ld:
                th = tool(img, history=True)
            th["busy_before"], th["others_cores"] = idle, ld.others_cores
            if not th.get("error"):
                th["mib_s"] = mib_s(rec["uncompressed_bytes"], th["seconds"])
                th["ratio"] = best_floor["seconds"] / th["seconds"]
                log(f"  {th['seconds']:.2f}s, rss {th['rss_mib']:.1f} MiB (other processes: {ld.others_cores} cores)")
            else:
                log(f"  error: {th['error']}")
            rec["tool_history"] = th
        if not a.no_history and not a.no_json:
            log(f"[{img.name}] tool analyze(history=True) + write_json")
            wait_idle(a.wait_idle)
            with Load() as ld:
                tj = tool(img, history=True, as_json=True)
            tj["others_cores"] = ld.others_cores
            if not tj.get("error"):
                log(f"  {tj['seconds']:.2f}s, rss {tj['rss_mib']:.1f} MiB (other processes: {ld.others_cores} cores)")
            rec["tool_history_json"] = tj
        if not a.no_history and not a.no_serial:
            log(f"[{img.name}] tool analyze(history=True), serial pass (FORENSICS_WORKERS=1)")
            wait_idle(a.wait_idle)
            with Load() as ld:
                ts = tool(img, history=True, workers=1)
            ts["others_cores"] = ld.others_cores
            if not ts.get("error"):
                ts["ratio"] = best_floor["seconds"] / ts["seconds"]
                log(f"  {ts['seconds']:.2f}s, rss {ts['rss_mib']:.1f} MiB (other processes: {ld.others_cores} cores)")
            rec["tool_history_serial"] = ts
        rec["peers"] = {} if a.no_peers else peers(img, a.wait_idle)
        if not a.no_cli:
            log(f"[{img.name}] CLI scan under /usr/bin/time -v")
            idle = wait_idle(a.wait_idle)
            with Load() as ld:
                c = cli(img)
            c["busy_before"], c["others_cores"] = idle, ld.others_cores
            log(
                f"  {c['seconds']:.2f}s, rss {c['rss_mib']} MiB, exit {c['exit_code']} "
                f"(other processes: {ld.others_cores} cores)" + (f" ERROR {c['error']}" if c.get("error") else "")
            )
            c["mib_s"] = mib_s(rec["uncompressed_bytes"], c["seconds"])
            c["ratio"] = best_floor["seconds"] / c["seconds"]
            rec["cli"] = c
        for t in (
            rec["tool"],
            rec.get("tool_history") or {},
            rec.get("tool_history_serial") or {},
            rec.get("tool_history_json") or {},
        ):
            t.pop("diff_ids", None)
        results.append(rec)

    table = render(results)
    print(table)
    print()
    print(details(results))
    print()
    print(targets(results))
    doc = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "units": "MiB = 2**20 bytes; throughput = uncompressed layer bytes / wall seconds",
        "targets": TARGETS,
        "machine": {
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "gzip_lib": GZIP_LIB,
            "zstandard": zstandard.__version__,
        },
        "params": {"size": size, "repeat": a.repeat, "seed": a.seed, "tool_switchinterval": a.tool_switchinterval},
        "images": results,
        "table": table.splitlines(),
    }
    (out / "results.json").write_text(json.dumps(doc, indent=1))
    log(f"wrote {out / 'results.json'}")
    if not a.keep:
        for img in generated:
            img.unlink(missing_ok=True)
            img.with_name(img.name.removesuffix(".oci.tar") + ".json").unlink(missing_ok=True)
            img.with_name(img.name.removesuffix(".oci.tar") + ".docker.tar").unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
