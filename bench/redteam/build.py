#!/usr/bin/env python3
"""Build the red-team set: realistic images from real builders, clean and forged.

    python3 bench/redteam/build.py                                  # every builder, every image
    python3 bench/redteam/build.py --builders docker-classic,buildah-layers --images sdk,ops
    python3 bench/redteam/build.py --force                          # rebuild what exists

Needs root, a debootstrap'd rootfs (made here when missing), and for the docker
builders a dockerd of its own (bench/redteam/dockerd.sh start). Outputs in
bench/out/redteam/samples/: NAME.docker.tar.zst / NAME.oci.tar and NAME.truth.json,
NAME = IMAGE.BUILDER.VARIANT (VARIANT = clean or the technique). See README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import forge  # noqa: E402
import fscheck  # noqa: E402
from images import DOCKERFILES, TECHNIQUES, Technique, poisoned_dockerfile, write_context  # noqa: E402

REPO = HERE.parents[1]
OUT = Path(os.environ.get("REDTEAM_OUT", REPO / "bench" / "out" / "redteam"))
SAMPLES, WORK, LOGS = OUT / "samples", OUT / "work", OUT / "logs"
DOCKER = ["/usr/bin/docker"]  # Debian's client: /usr/local/bin/docker may be a stub
DOCKER_HOST = os.environ.get("DOCKER_HOST", f"unix://{REPO}/bench/out/docker.sock")
BUILDAH = [
    "buildah",
    "--storage-driver",
    "overlay",
    "--root",
    str(OUT / "buildah/root"),
    "--runroot",
    str(OUT / "buildah/run"),
]
CA = Path(os.environ.get("REDTEAM_CA", "/etc/ssl/certs/ca-certificates.crt"))
SUITE, MIRROR = "bookworm", os.environ.get("MIRROR", "http://deb.debian.org/debian")

BUILDERS = {
    "docker-classic": ("docker", {"DOCKER_BUILDKIT": "0"}, []),
    "docker-buildkit": ("docker", {"DOCKER_BUILDKIT": "1"}, []),
    "buildah-layers": ("buildah", {}, ["--layers"]),
    "buildah-nolayers": ("buildah", {}, ["--layers=false"]),
}
FORMATS = {"docker": ["docker"], "buildah": ["oci", "docker"]}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], *, env: dict | None = None, logfile: Path | None = None) -> str:
    e = dict(os.environ, DOCKER_HOST=DOCKER_HOST, **(env or {}))
    p = subprocess.run(cmd, env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if logfile:
        with logfile.open("a") as f:
            f.write(f"$ {' '.join(cmd)}\n{p.stdout}\n")
    if p.returncode:
        raise RuntimeError(f"{cmd[0]} failed ({p.returncode}): {' '.join(cmd)}\n{p.stdout[-3000:]}")
    return p.stdout


# ---- base ---------------------------------------------------------------------


def rootfs_tar() -> Path:
    tar = OUT / "rootfs.tar"
    if tar.exists():
        return tar
    root = OUT / "rootfs"
    log(f"debootstrap --variant=minbase {SUITE}")
    shutil.rmtree(root, ignore_errors=True)
    run(["debootstrap", "--variant=minbase", SUITE, str(root), MIRROR], logfile=OUT / "debootstrap.log")
    for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
        shutil.rmtree(root / junk, ignore_errors=True)
    (root / "var/lib/apt/lists/partial").mkdir(parents=True)
    (root / "var/cache/apt/archives/partial").mkdir(parents=True)
    (root / "var/log/bootstrap.log").unlink(missing_ok=True)
    run(["tar", "-C", str(root), "--numeric-owner", "--sort=name", "--mtime=@1700000000", "-cf", str(tar), "."])
    return tar


def base_ref(kind: str) -> str:
    return "redteam/base:bookworm" if kind == "docker" else "localhost/redteam/base:bookworm"


def ensure_base(kind: str) -> None:
    ctx = OUT / "ctx" / "base"
    ctx.mkdir(parents=True, exist_ok=True)
    if not (ctx / "rootfs.tar").exists():
        os.link(rootfs_tar(), ctx / "rootfs.tar")
    (ctx / "Dockerfile").write_text('FROM scratch\nADD rootfs.tar /\nCMD ["bash"]\n')
    ref = base_ref(kind)
    if kind == "docker":
        if subprocess.run(
            DOCKER + ["image", "inspect", ref], env=dict(os.environ, DOCKER_HOST=DOCKER_HOST), capture_output=True
        ).returncode:
            run(DOCKER + ["build", "-q", "-t", ref, str(ctx)], env={"DOCKER_BUILDKIT": "0"})
    elif subprocess.run(BUILDAH + ["inspect", "--type", "image", ref], capture_output=True).returncode:
        run(BUILDAH + ["bud", "--isolation", "chroot", "--layers", "-q", "-t", ref, str(ctx)])


# ---- build and export ---------------------------------------------------------


def build(builder: str, image: str, dockerfile: str, tag: str, logfile: Path) -> None:
    kind, env, flags = BUILDERS[builder]
    ctx = OUT / "ctx" / f"{image}.{builder}"
    df = ctx / f"Dockerfile.{tag.rsplit(':', 1)[1]}"
    df.write_text(dockerfile.replace("{BASE}", base_ref(kind)))
    if kind == "docker":
        run(DOCKER + ["build", "--network", "host", "-f", str(df), "-t", tag, str(ctx)], env=env, logfile=logfile)
    else:
        run(
            BUILDAH
            + [
                "bud",
                "--isolation",
                "chroot",
                "--pull=never",
                "--network",
                "host",
                *flags,
                "-f",
                str(df),
                "-t",
                tag,
                str(ctx),
            ],
            logfile=logfile,
        )


def export(builder: str, tag: str, fmt: str, dest: Path, logfile: Path) -> None:
    kind = BUILDERS[builder][0]
    dest.unlink(missing_ok=True)
    if kind == "docker":
        run(DOCKER + ["save", "-o", str(dest), tag], logfile=logfile)
    elif fmt == "oci":
        run(BUILDAH + ["push", tag, f"oci-archive:{dest}:{tag.split('/', 1)[1]}"], logfile=logfile)
    else:
        run(BUILDAH + ["push", tag, f"docker-archive:{dest}:{tag}"], logfile=logfile)


def repack(builder: str, fmt: str, root: Path, final: Path, ref: str, logfile: Path) -> None:
    """Let the real tool write the forged archive: docker load + save, or skopeo copy."""
    kind = BUILDERS[builder][0]
    tmp = root.with_suffix(".forged.tar")
    if kind == "docker" or fmt == "docker":
        forge.pack(root, tmp)
    if kind == "docker":
        run(DOCKER + ["load", "-i", str(tmp)], logfile=logfile)
        run(DOCKER + ["save", "-o", str(final), ref], logfile=logfile)
        run(DOCKER + ["rmi", ref], logfile=logfile)
    elif fmt == "oci":
        run(["skopeo", "copy", "-q", f"oci:{root}", f"oci-archive:{final}:{ref.split('/', 1)[1]}"], logfile=logfile)
    else:
        run(["skopeo", "copy", "-q", f"docker-archive:{tmp}", f"docker-archive:{final}:{ref}"], logfile=logfile)
    tmp.unlink(missing_ok=True)


def read_config(root: Path, fmt: str) -> dict:
    return forge.oci_config(root) if (root / "index.json").exists() else forge.docker_config(root)[0]


def finish(final: Path, fmt: str) -> Path:
    """docker-archives are stored zstd-compressed (forensics reads .tar.zst as is)."""
    if fmt == "docker":
        run(["zstd", "-q", "-f", "-T0", "-3", "--rm", str(final)])
        return final.with_name(final.name + ".zst")
    return final


def write_truth(final: Path, **fields) -> None:
    Path(str(final) + ".truth.json").write_text(json.dumps({"sample": final.name, **fields}, indent=1) + "\n")


# ---- one image on one builder --------------------------------------------------


def sample_name(image: str, builder: str, variant: str, fmt: str) -> str:
    return f"{image}.{builder}.{variant}.{fmt}.tar"


def done(name: str, fmt: str) -> bool:
    final = SAMPLES / (name + (".zst" if fmt == "docker" else ""))
    return final.exists() and Path(str(final) + ".truth.json").exists()


def do_image(builder: str, image: str, techniques: list[Technique], force: bool) -> None:
    kind = BUILDERS[builder][0]
    fmts = FORMATS[kind]
    wanted = [t for t in techniques if force or not all(done(sample_name(image, builder, t.name, f), f) for f in fmts)]
    clean_missing = force or not all(done(sample_name(image, builder, "clean", f), f) for f in fmts)
    if not wanted and not clean_missing:
        return
    logfile = LOGS / f"{image}.{builder}.log"
    # One context per image and builder: builders may run in parallel processes.
    write_context(image, OUT / "ctx" / f"{image}.{builder}", OUT / "rootfs", CA)
    work = WORK / f"{image}.{builder}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    clean_tag = f"localhost/redteam/{image}:{builder}-clean"
    t0 = time.monotonic()
    build(builder, image, DOCKERFILES[image], clean_tag, logfile)
    log(f"{image} {builder}: clean built in {time.monotonic() - t0:.0f} s")
    clean_dirs = {}
    for fmt in fmts:
        raw = work / f"clean.{fmt}.tar"
        export(builder, clean_tag, fmt, raw, logfile)
        clean_dirs[fmt] = work / f"clean.{fmt}"
        forge.extract(raw, clean_dirs[fmt])
        name = sample_name(image, builder, "clean", fmt)
        if clean_missing:
            shutil.move(raw, SAMPLES / name)
            final = finish(SAMPLES / name, fmt)
            write_truth(
                final,
                image=image,
                builder=builder,
                format=f"{fmt}-archive",
                technique=None,
                clean=True,
                poisoned_paths=[],
                also_forged_paths=[],
                poisoned_config=[],
                poisoned_history=[],
                clean_sample=final.name,
            )
        else:
            raw.unlink()
    status()
    for t in wanted:
        t0 = time.monotonic()
        tag = f"localhost/redteam/{image}:{builder}-{t.name}"
        if t.builds:
            build(builder, image, poisoned_dockerfile(t), tag, logfile)
        for fmt in fmts:
            clean_cfg = read_config(clean_dirs[fmt], fmt)
            if t.builds:
                raw = work / f"{t.name}.{fmt}.tar"
                export(builder, tag, fmt, raw, logfile)
                root = work / f"{t.name}.{fmt}"
                forge.extract(raw, root)
                raw.unlink()
                cfg = read_config(root, fmt)
                hist = forge.poisoned_history_indices(cfg, clean_cfg)
                new = forge.forge_config(cfg, clean_cfg, {})
                before, after = fscheck.state(clean_dirs[fmt], set(t.paths)), fscheck.state(root, set(t.paths))
                same = [p for p in t.paths if before[p] == after[p]]
                if same or not hist:
                    raise RuntimeError(f"{t.name} on {builder}: forgery did not change {same} (history {hist})")
            else:
                root = work / f"{t.name}.{fmt}"
                shutil.copytree(clean_dirs[fmt], root, symlinks=True)
                hist = []
                new = forge.forge_config(clean_cfg, None, t.config)
            if fmt == "oci":
                forge.rewrite_oci_dir(root, new)
            else:
                forge.rewrite_docker_dir(root, new, tag)
            name = sample_name(image, builder, t.name, fmt)
            final = SAMPLES / name
            final.unlink(missing_ok=True)
            repack(builder, fmt, root, final, tag, logfile)
            shutil.rmtree(root)
            final = finish(final, fmt)
            write_truth(
                final,
                image=image,
                builder=builder,
                format=f"{fmt}-archive",
                technique=t.name,
                clean=False,
                what=t.what,
                poisoned_paths=list(t.paths),
                also_forged_paths=list(t.also),
                poisoned_config=sorted(t.config),
                poisoned_history=hist,
                clean_sample=sample_name(image, builder, "clean", fmt) + (".zst" if fmt == "docker" else ""),
            )
        log(f"{image} {builder}: {t.name} in {time.monotonic() - t0:.0f} s")
        if kind == "buildah":
            subprocess.run(BUILDAH + ["rmi", tag], capture_output=True)
        status()
    shutil.rmtree(work, ignore_errors=True)


def status() -> None:
    """bench/out/redteam/STATUS.txt: what is built so far, by builder."""
    rows: dict[str, list[str]] = {}
    for tf in sorted(SAMPLES.glob("*.truth.json")):
        t = json.loads(tf.read_text())
        rows.setdefault(t["builder"], []).append(
            f"{t['image']}:{t['technique'] or 'clean'}:{t['format'].split('-')[0]}"
        )
    lines = [
        f"updated {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}",
        f"samples in {SAMPLES} (truth: <sample>.truth.json)",
        "",
    ]
    per_format = len(DOCKERFILES) + len(TECHNIQUES)
    for b, items in rows.items():
        full = per_format * len(FORMATS[BUILDERS[b][0]])
        lines.append(f"{b}: {len(items)} of {full} samples")
        lines += [f"  {i}" for i in items]
    scores = sorted(p.name for p in OUT.glob("score*.txt"))
    if scores:
        lines += ["", "scored (bench/precision.py --redteam): " + ", ".join(scores)]
    (OUT / "STATUS.txt").write_text("\n".join(lines) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--builders", default=",".join(BUILDERS))
    ap.add_argument("--images", default=",".join(DOCKERFILES))
    ap.add_argument("--techniques", default="", help="comma-separated; default all")
    ap.add_argument("--force", action="store_true")
    a = ap.parse_args()
    for d in (SAMPLES, WORK, LOGS):
        d.mkdir(parents=True, exist_ok=True)
    rootfs_tar()
    if not (OUT / "rootfs").is_dir():
        raise SystemExit("the vendor tarball needs the extracted rootfs in bench/out/redteam/rootfs")
    only = set(filter(None, a.techniques.split(",")))
    for builder in a.builders.split(","):
        ensure_base(BUILDERS[builder][0])
        for image in a.images.split(","):
            ts = [t for t in TECHNIQUES if t.image == image and (not only or t.name in only)]
            try:
                do_image(builder, image, ts, a.force)
            except Exception as e:  # one image failing must not stop the set
                log(f"FAILED {image} {builder}: {type(e).__name__}: {e}")
    status()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
