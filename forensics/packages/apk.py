"""apk installed database (`lib/apk/db/installed`), Alpine / Wolfi / Chainguard.

Stanzas separated by blank lines, one `X:value` per line. Per package: `P:` name,
`V:` version, `A:` arch, `f:` flags. Then `F:` directory (relative to /), `M:`
its acl, and for each file in it `R:` name, `a:` `uid:gid:mode[:xattr-digest]`,
`Z:` digest (apk-tools database.c, blob.c).

Digest semantics the caller must apply:
- `Z:Q1<base64>` is 20 bytes: SHA-1 of the content, or the first 160 bits of
  SHA-256 (algo "sha256-160") when the package flags `f:` contain `S` (apk v3).
  `f:` may come after the files, so the algorithm is settled per stanza.
- `Z:Q2<base64>` is a full SHA-256; bare hex is md5 (32) or sha1 (40).
- For a symlink, the digest is over the link-target string, not over the file
  it points to; hard links carry their target's digest. The database does not
  say which entries are symlinks: check the entry type in the layer.
"""

from __future__ import annotations

import base64
import binascii

from .model import DigestAlgo, ErrorLog, Package, PackageDB, PackageFile, clean_digest, norm_path


def decode_z(value: str, sha256_160: bool) -> tuple[str, DigestAlgo] | None:
    """`Z:` value -> (hex digest, algo), or None if malformed."""
    if value.startswith(("Q1", "Q2")):
        try:
            raw = base64.b64decode(value[2:], validate=True)
        except (binascii.Error, ValueError):
            return None
        if value[1] == "1" and len(raw) == 20:
            return raw.hex(), "sha256-160" if sha256_160 else "sha1"
        if value[1] == "2" and len(raw) == 32:
            return raw.hex(), "sha256"
        return None
    algo: DigestAlgo | None = "md5" if len(value) == 32 else "sha1" if len(value) == 40 else None
    digest = clean_digest(value, algo) if algo else None
    return (digest, algo) if digest and algo else None


def _mode(acl: str) -> int | None:
    parts = acl.split(":")
    try:
        return int(parts[2], 8) if len(parts) >= 3 else None
    except ValueError:
        return None


class _Stanza:
    def __init__(self, start: int) -> None:
        self.start = start
        self.fields: dict[str, str] = {}
        self.flags = ""
        # [path, raw Z value or None, mode]; digest decoded once flags are known
        self.files: list[list] = []


def _finish(st: _Stanza, source: str, db: PackageDB, log: ErrorLog) -> None:
    name = st.fields.get("P")
    if not name:
        log.add(f"{source}:{st.start}: stanza without P: (package name)")
        return
    if db.full():  # counted before its files are built: the cost is in those
        db.drop(name, source)
        return
    sha256_160 = "S" in st.flags
    files = []
    for path, z, mode in st.files:
        f = PackageFile(path=path, mode=mode)
        if z is not None:
            got = decode_z(z, sha256_160)
            if got is None:
                log.add(f"{source}: {name}: bad Z: digest for {path}")
            else:
                f.digest, f.algo = got
        files.append(f)
    db.add(
        Package(
            manager="apk",
            name=name,
            version=st.fields.get("V", ""),
            arch=st.fields.get("A") or None,
            files=files,
            source_path=source,
            source_paths=[source],
        )
    )


def parse_apk(data: bytes, source_path: str) -> PackageDB:
    """Parse an apk `installed` database; malformed lines are logged and skipped."""
    db = PackageDB(manager="apk")
    log = ErrorLog(db.errors)
    text = data.decode("utf-8", "surrogateescape").replace("\r\n", "\n")
    st: _Stanza | None = None
    cur_dir = ""
    cur_file: list | None = None
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            if st is not None:
                _finish(st, source_path, db, log)
            st, cur_dir, cur_file = None, "", None
            continue
        if len(line) < 2 or line[1] != ":":
            log.add(f"{source_path}:{lineno}: not a `X:value` line")
            continue
        if st is None:
            st = _Stanza(lineno)
        key, value = line[0], line[2:]
        if key == "F":
            cur_dir, cur_file = value, None
        elif key == "R":
            cur_file = [norm_path(f"{cur_dir}/{value}"), None, None]
            st.files.append(cur_file)
        elif key in "aZ":
            if cur_file is None:
                log.add(f"{source_path}:{lineno}: {key}: before any R:")
            elif key == "a":
                cur_file[2] = _mode(value)
            else:
                cur_file[1] = value
        elif key == "f":
            st.flags += value
        elif key in "PVA":
            st.fields[key] = value
    if st is not None:
        _finish(st, source_path, db, log)
    log.finish()
    return db
