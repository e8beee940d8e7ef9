"""rpm database: SQLite `rpmdb.sqlite` (Packages table of header blobs).

Each blob is an rpm header image without lead or magic: big-endian `il` (index
entry count), `dl` (data length), `il` x 16-byte entries (tag, type, offset,
count), then `dl` bytes of data (go-rpmdb pkg/entry.go). The first entry is
usually a region tag (61-63) wrapping the immutable part; entries after the
region ("dribble", e.g. FILESTATES written at install time) override it, so a
later entry for the same tag wins. Everything is bounds-checked: the database
is attacker-controlled.

Berkeley DB (`Packages`) and NDB (`Packages.db`) are recognised but not parsed.
"""

from __future__ import annotations

import os
import sqlite3
import struct
import tempfile

from .model import ErrorLog, Package, PackageDB, PackageFile, clean_digest, norm_path

BDB_UNSUPPORTED = "Berkeley DB rpm database not supported"
NDB_UNSUPPORTED = "NDB rpm database (Packages.db) not supported"

SQLITE_MAGIC = b"SQLite format 3\x00"

MAX_INDEX_ENTRIES = 100_000
# sqlite VM steps before a query is abandoned; a real rpmdb needs a few per row.
MAX_SQLITE_STEPS = 50_000_000

# Header data types.
NULL, CHAR, INT8, INT16, INT32, INT64, STRING, BIN, STRING_ARRAY, I18NSTRING = range(10)
_INT_FMT = {CHAR: "B", INT8: "B", INT16: "H", INT32: "I", INT64: "Q"}

# Tags.
NAME, VERSION, RELEASE, EPOCH, ARCH = 1000, 1001, 1002, 1003, 1022
OLDFILENAMES = 1027
FILEMODES, FILESTATES, FILEDIGESTS, FILELINKTOS, FILEFLAGS = 1030, 1029, 1035, 1036, 1037
DIRINDEXES, BASENAMES, DIRNAMES = 1116, 1117, 1118
FILEDIGESTALGO = 5011
WANTED_TAGS = frozenset(
    {
        NAME,
        VERSION,
        RELEASE,
        EPOCH,
        ARCH,
        OLDFILENAMES,
        FILEMODES,
        FILESTATES,
        FILEDIGESTS,
        FILELINKTOS,
        FILEFLAGS,
        DIRINDEXES,
        BASENAMES,
        DIRNAMES,
        FILEDIGESTALGO,
    }
)

RPMFILE_CONFIG = 1
RPMFILE_GHOST = 64
# FILESTATES: 0 normal, 1 replaced (another package's copy is on disk), 2 not
# installed (--excludedocs, nodocs), 3 netshared, 4 wrong color (multilib: the
# other arch's copy won). In all but 0 this package's digest is not what's on disk.
STATES_NOT_INSTALLED = frozenset({1, 2, 3, 4})

# rpm PGPHASHALGO values (go-rpmdb pkg/file_digest.go); missing tag = md5.
DIGEST_ALGOS = {1: "md5", 2: "sha1", 8: "sha256", 9: "sha384", 10: "sha512"}


class HeaderError(ValueError):
    pass


def _cstrings(data: bytes, start: int, end: int, count: int) -> list[str]:
    out = []
    pos = start
    for _ in range(count):
        nul = data.find(b"\0", pos, end)
        if nul < 0:
            raise HeaderError("unterminated string")
        out.append(data[pos:nul].decode("utf-8", "surrogateescape"))
        pos = nul + 1
    return out


def parse_header(blob: bytes, wanted: frozenset[int] = WANTED_TAGS) -> dict[int, object]:
    """Header blob -> {tag: str | list[str] | list[int] | bytes} for `wanted` tags."""
    if len(blob) < 8:
        raise HeaderError("header shorter than 8 bytes")
    il, dl = struct.unpack_from(">ii", blob, 0)
    if not 0 < il <= MAX_INDEX_ENTRIES:
        raise HeaderError(f"bad index entry count {il}")
    data_start = 8 + 16 * il
    if dl < 0 or data_start + dl > len(blob):
        raise HeaderError(f"data length {dl} exceeds blob ({len(blob)} bytes, {il} entries)")
    data_end = data_start + dl
    # Later entries override earlier ones (dribble over region). Decoding only the
    # last one per tag also stops a header that repeats a big tag 100000 times.
    last: dict[int, tuple[int, int, int]] = {}
    for i in range(il):
        tag, typ, off, count = struct.unpack_from(">iIiI", blob, 8 + 16 * i)
        if tag in wanted:
            last[tag] = (typ, off, count)
    out: dict[int, object] = {}
    for tag, (typ, off, count) in last.items():
        if not 0 <= off < dl:
            raise HeaderError(f"tag {tag}: offset {off} outside data ({dl} bytes)")
        if count > dl:
            raise HeaderError(f"tag {tag}: count {count} exceeds data length")
        start = data_start + off
        if typ == STRING:
            out[tag] = _cstrings(blob, start, data_end, 1)[0]
        elif typ in (STRING_ARRAY, I18NSTRING):
            out[tag] = _cstrings(blob, start, data_end, count)
        elif typ in _INT_FMT:
            fmt = f">{count}{_INT_FMT[typ]}"
            if start + struct.calcsize(fmt) > data_end:
                raise HeaderError(f"tag {tag}: {count} values run past data")
            out[tag] = list(struct.unpack_from(fmt, blob, start))
        elif typ == BIN:
            if start + count > data_end:
                raise HeaderError(f"tag {tag}: binary runs past data")
            out[tag] = blob[start : start + count]
        else:
            raise HeaderError(f"tag {tag}: unknown type {typ}")
    return out


def _str(h: dict[int, object], tag: int) -> str | None:
    v = h.get(tag)
    if isinstance(v, list) and v and isinstance(v[0], str):  # I18N / array given for a string
        v = v[0]
    return v if isinstance(v, str) else None


def _list(h: dict[int, object], tag: int, kind: type) -> list | None:
    v = h.get(tag)
    if isinstance(v, list) and all(isinstance(x, kind) for x in v):
        return v
    return None


def _at(values: list | None, i: int):
    return values[i] if values is not None and i < len(values) else None


def header_to_package(h: dict[int, object], source_path: str, log: ErrorLog) -> Package | None:
    name = _str(h, NAME)
    if not name:
        log.add(f"{source_path}: header without NAME")
        return None
    version = _str(h, VERSION) or ""
    release = _str(h, RELEASE)
    epoch = _list(h, EPOCH, int)
    evr = (f"{epoch[0]}:" if epoch else "") + version + (f"-{release}" if release else "")

    basenames = _list(h, BASENAMES, str)
    if basenames is not None:
        dirnames = _list(h, DIRNAMES, str) or []
        dirindexes = _list(h, DIRINDEXES, int) or []
        if len(dirindexes) != len(basenames) or any(d >= len(dirnames) for d in dirindexes):
            log.add(f"{source_path}: {name}: inconsistent BASENAMES/DIRNAMES/DIRINDEXES; files skipped")
            paths: list[str] = []
        else:
            paths = [dirnames[d] + b for d, b in zip(dirindexes, basenames)]
    else:
        paths = _list(h, OLDFILENAMES, str) or []

    algo_v = _list(h, FILEDIGESTALGO, int)
    algo_n = algo_v[0] if algo_v else 1
    algo = DIGEST_ALGOS.get(algo_n)
    if algo is None:
        log.add(f"{source_path}: {name}: unknown FILEDIGESTALGO {algo_n}; digests dropped")
    digests = _list(h, FILEDIGESTS, str)
    modes = _list(h, FILEMODES, int)
    flags = _list(h, FILEFLAGS, int)
    states = _list(h, FILESTATES, int)
    links = _list(h, FILELINKTOS, str)
    for label, arr in (
        ("FILEDIGESTS", digests),
        ("FILEMODES", modes),
        ("FILEFLAGS", flags),
        ("FILESTATES", states),
        ("FILELINKTOS", links),
    ):
        if arr is not None and len(arr) != len(paths):
            log.add(f"{source_path}: {name}: {label} has {len(arr)} entries for {len(paths)} files")

    files = []
    bad_digests = 0
    for i, path in enumerate(paths):
        raw = _at(digests, i)
        digest = clean_digest(raw, algo) if raw and algo else None
        if raw and algo and digest is None:
            bad_digests += 1
        fl = _at(flags, i) or 0
        files.append(
            PackageFile(
                path=norm_path(path),
                digest=digest,
                algo=algo if digest else None,
                is_config=bool(fl & RPMFILE_CONFIG),
                ghost=bool(fl & RPMFILE_GHOST),
                not_installed=_at(states, i) in STATES_NOT_INSTALLED,
                link_target=_at(links, i) or None,
                mode=_at(modes, i),
            )
        )
    if bad_digests:
        log.add(f"{source_path}: {name}: {bad_digests} digests are not {algo} hex; dropped")
    return Package(
        manager="rpm",
        name=name,
        version=evr,
        arch=_str(h, ARCH) or None,
        files=files,
        source_path=source_path,
        source_paths=[source_path],
    )


def parse_header_blobs(blobs, source_path: str) -> PackageDB:
    """Packages from an iterable of header blobs; bad blobs become errors."""
    db = PackageDB(manager="rpm")
    log = ErrorLog(db.errors)
    blobs = iter(blobs)
    for n, blob in enumerate(blobs):
        try:
            if not isinstance(blob, (bytes, bytearray, memoryview)):
                raise HeaderError(f"blob is {type(blob).__name__}, not bytes")
            pkg = header_to_package(parse_header(bytes(blob)), source_path, log)
        except (HeaderError, struct.error) as e:
            log.add(f"{source_path}: package #{n + 1}: malformed header: {e}")
            continue
        if pkg is not None:
            db.add(pkg)
        if db.full():  # the rest is counted, not parsed (forensics.packages.model.MAX_PACKAGES)
            for _ in blobs:
                db.drop(f"header #{n + 2 + db.dropped}", source_path)
            break
    log.finish()
    return db


def _guard(conn: sqlite3.Connection) -> None:
    steps = 0

    def tick() -> int:
        nonlocal steps
        steps += 1000
        return 1 if steps > MAX_SQLITE_STEPS else 0  # non-zero aborts the query

    conn.set_progress_handler(tick, 1000)
    # A hostile schema must not run functions through views/triggers or trust bad pages.
    conn.execute("PRAGMA trusted_schema = OFF")
    conn.execute("PRAGMA cell_size_check = ON")


def _rows(conn: sqlite3.Connection, errors: list[str]):
    """Blobs of the Packages table; a corrupt page ends the scan, keeping what was read."""
    try:
        for (blob,) in conn.execute("SELECT blob FROM Packages"):
            yield blob
    except sqlite3.Error as e:
        errors.append(str(e))


def parse_rpmdb_sqlite(data: bytes, source_path: str, wal: bytes | None = None) -> PackageDB:
    """Parse an rpmdb.sqlite image; `wal` is the sibling `rpmdb.sqlite-wal`, if any.

    sqlite needs a real file, so the bytes go to a private temporary directory
    (removed afterwards) and are opened read-only.
    """
    if not data.startswith(SQLITE_MAGIC):
        return PackageDB(manager="rpm", errors=[f"{source_path}: not an SQLite database"])
    with tempfile.TemporaryDirectory(prefix="forensics-rpmdb-") as tmp:
        path = os.path.join(tmp, "rpmdb.sqlite")
        with open(path, "wb") as fh:
            fh.write(data)
        if wal:
            # sqlite replays committed WAL frames on open; it creates -shm itself.
            with open(path + "-wal", "wb") as fh:
                fh.write(wal)
        conn = None
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            _guard(conn)
            row = conn.execute("SELECT type, sql FROM sqlite_master WHERE name = 'Packages'").fetchone()
            if row is None or row[0] != "table" or "VIRTUAL" in (row[1] or "").upper():
                return PackageDB(manager="rpm", errors=[f"{source_path}: no Packages table"])
            cursor_errors: list[str] = []
            db = parse_header_blobs(_rows(conn, cursor_errors), source_path)
            db.errors += [f"{source_path}: sqlite error: {e}" for e in cursor_errors]
            return db
        except (sqlite3.Error, MemoryError, OverflowError) as e:
            return PackageDB(manager="rpm", errors=[f"{source_path}: sqlite error: {e}"])
        finally:
            if conn is not None:
                conn.close()


def parse_rpmdb(data: bytes, source_path: str, wal: bytes | None = None) -> PackageDB:
    """Dispatch on content, then on name: SQLite, else Berkeley DB / NDB (unsupported)."""
    if data.startswith(SQLITE_MAGIC):
        return parse_rpmdb_sqlite(data, source_path, wal)
    msg = NDB_UNSUPPORTED if source_path.endswith(".db") else BDB_UNSUPPORTED
    return PackageDB(manager="rpm", errors=[f"{source_path}: {msg}"])
