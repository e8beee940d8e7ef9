"""Words of the image config and of the history lines that set it (forensics.history.config).

Go's `%q` lists (`["/bin/sh" "-c" "x"]`: what the classic builder and BuildKit write
for CMD and ENTRYPOINT), Dockerfile words and their expansion (BuildKit's parser
`parseWords` and shell.Lex `ProcessWord`: what buildah's as-written lines need),
`K=V` lists, ports, durations and HEALTHCHECK records, each normalized so that a
history value and a config value compare. WILD stands for a value the history does
not give (a build arg): it matches any text, by a linear glob match.
"""

from __future__ import annotations

import json
import posixpath
import re
from typing import Any

WILD = "\x00"  # stands for the value of a variable the history does not give
MAX_PORTS = 4096  # a port range wider than this is compared as written


def matches(pattern: str, value: str) -> bool:
    """`pattern` with WILD standing for any text: a glob match, greedy and linear (a regex of
    many `.*` would backtrack without bound on a hostile value)."""
    if WILD not in pattern:
        return pattern == value
    parts = pattern.split(WILD)
    first, last = parts[0], parts[-1]
    if not value.startswith(first) or len(value) < len(first) + len(last) or not value.endswith(last):
        return False
    pos, end = len(first), len(value) - len(last)
    for part in parts[1:-1]:
        at = value.find(part, pos, end)
        if at < 0:
            return False
        pos = at + len(part)
    return True


# --------------------------------------------------------------------------- Go and Dockerfile words


_GO_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    '"': '"',
    "'": "'",
}
_GO_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"', re.DOTALL)


def go_unquote(body: str) -> str:
    """The body of a Go `strconv.Quote` string (what `%q` writes) decoded."""
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c != "\\" or i + 1 >= len(body):
            out.append(c)
            i += 1
            continue
        n = body[i + 1]
        if n in _GO_ESCAPES:
            out.append(_GO_ESCAPES[n])
            i += 2
            continue
        width = {"x": 2, "u": 4, "U": 8}.get(n)
        digits = body[i + 2 : i + 2 + width] if width else ""
        if width and re.fullmatch(r"[0-9a-fA-F]+", digits or "-") and len(digits) == width:
            code = int(digits, 16)
            out.append(chr(code) if code <= 0x10FFFF else "\ufffd")
            i += 2 + width
        elif re.fullmatch(r"[0-7]{3}", body[i + 1 : i + 4]):
            out.append(chr(int(body[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(n)
            i += 2
    return "".join(out)


def quoted_list(text: str) -> list[str] | None:
    """`["a" "b"]` (Go %q of a slice) or `["a", "b"]` (JSON) -> list; else None."""
    t = text.strip()
    if not (t.startswith("[") and t.endswith("]")):
        return None
    try:
        value = json.loads(t)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    except (ValueError, RecursionError):
        pass
    inner = t[1:-1]
    items: list[str] = []
    pos = 0
    for m in _GO_STRING.finditer(inner):
        if inner[pos : m.start()].strip(" ,"):
            return None  # something between the strings: not a quoted list
        items.append(go_unquote(m.group(1)))
        pos = m.end()
    if inner[pos:].strip(" ,"):
        return None
    return items


def dockerfile_words(text: str) -> list[str]:
    """Split as BuildKit's parser `parseWords` does: on blanks outside quotes, quotes kept."""
    words: list[str] = []
    cur: list[str] = []
    quote = None
    i = 0
    while i < len(text):
        c = text[i]
        if quote is None and c in " \t\r\n":
            if cur:
                words.append("".join(cur))
                cur = []
            i += 1
            continue
        if c == "\\" and quote != "'" and i + 1 < len(text):
            cur.append(text[i : i + 2])
            i += 2
            continue
        if quote is None and c in "'\"":
            quote = c
        elif quote == c:
            quote = None
        cur.append(c)
        i += 1
    if cur:
        words.append("".join(cur))
    return words


_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-+?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def expand(word: str, env: dict[str, str]) -> str:
    """Dockerfile word processing (BuildKit shell.Lex ProcessWord): quotes removed,
    backslash escapes, `$V`, `${V}`, `${V:-w}`, `${V:+w}`. An unknown variable expands
    to WILD (the history does not say its value)."""
    out: list[str] = []
    i = 0
    quote = None
    while i < len(word):
        c = word[i]
        if quote == "'":
            if c == "'":
                quote = None
            else:
                out.append(c)
            i += 1
            continue
        if c == "\\" and i + 1 < len(word):
            n = word[i + 1]
            if quote == '"' and n not in '"\\$`':
                out.append(c)
            out.append(n)
            i += 2
            continue
        if c in "'\"" and quote is None:
            quote = c
            i += 1
            continue
        if c == '"' and quote == '"':
            quote = None
            i += 1
            continue
        if c == "$":
            m = _VAR.match(word, i)
            if m:
                name = m.group(1) or m.group(4)
                op, arg = m.group(2), m.group(3)
                value = env.get(name)
                if value is None and WILD in env:
                    # Undefined in a complete history: unset.
                    if op in (":-", "-"):
                        out.append(expand(arg or "", env))
                    elif op not in (":+", "+"):
                        out.append("")
                elif value is None:
                    out.append(WILD)  # the history does not say
                elif value == WILD and op in (":-", ":+", "-", "+"):
                    out.append(WILD)  # a build arg's value: unknown, and so is the result
                elif op is None or op in (":?", "?"):
                    out.append(value)
                elif op in (":-", "-"):
                    out.append(expand(arg or "", env) if op == ":-" and value == "" else value)
                else:  # ${V:+w} / ${V+w}
                    out.append(expand(arg or "", env) if (value != "" or op == "+") else "")
                i = m.end()
                continue
        out.append(c)
        i += 1
    text = "".join(out)
    return re.sub(WILD + "+", WILD, text)


def raw_pairs(text: str, env: dict[str, str]) -> list[tuple[str, str]]:
    """ENV/LABEL as written (buildah, kaniko): `K=V K2="a b"` or the legacy `K V`."""
    words = dockerfile_words(text)
    if not words:
        return []
    if "=" not in words[0]:
        key, _, value = text.strip().partition(" ")
        return [(expand(key, env), expand(value.strip(), env))]
    out = []
    for w in words:
        key, eq, value = w.partition("=")
        if eq:
            out.append((expand(key, env), expand(value, env)))
    return out


def processed_pairs(text: str, oracle: dict[str, Any]) -> list[tuple[str, str]]:
    """ENV/LABEL as classic and BuildKit record them: `K=V K2=V2`, unquoted, so `K=a b=c` may
    be one pair or two. Split at every `NAME=`; join a pair with the words after it where that
    makes it the value the config holds (the config is then the tie-breaker, never the truth)."""
    groups: list[list[str]] = []  # the words of each pair, the first one holding `KEY=`
    for tok in text.split(" "):
        key, eq, _ = tok.partition("=")
        if eq and key or not groups:
            groups.append([tok])
        else:
            groups[-1].append(tok)
    pairs: list[tuple[str, str, str]] = []  # key, value, the words as written
    for g in groups:
        raw = " ".join(g)
        key, eq, value = raw.partition("=")
        if eq and key:
            pairs.append((key, value, raw))
        elif raw:
            pairs.append((raw, "", raw))  # no `=`: a legacy form or a bare word
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(pairs):
        key, value, _ = pairs[i]
        want = oracle.get(key)
        j = i + 1
        if isinstance(want, str) and want != value and want.startswith(value):
            pos = len(value)  # how much of `want` the pair and the words joined so far cover
            for k in range(i + 1, len(pairs)):
                piece = " " + pairs[k][2]
                if want[pos : pos + len(piece)] != piece:
                    break
                pos += len(piece)
                if pos == len(want):
                    value, j = want, k + 1
                    break
        out.append((key, value))
        i = j
    return out


# --------------------------------------------------------------------------- normalizing


def argv(value: Any) -> list[str] | None:
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    return None  # null and [] both mean "not set" at run time


def env_map(value: Any) -> tuple[dict[str, str | None], list[str]]:
    """Config Env -> {name: value}; names listed twice are returned apart."""
    out: dict[str, str | None] = {}
    dup: list[str] = []
    if not isinstance(value, list):
        return out, dup
    for item in value:
        if not isinstance(item, str):
            continue
        k, eq, v = item.partition("=")
        if k in out and out[k] != (v if eq else None):
            dup.append(k)
        out[k] = v if eq else None
    return out, dup


def port_keys(spec: str) -> list[str]:
    """`8080`, `8080/TCP`, `1.2.3.4:80:8080/udp`, `7000-7002` -> ["8080/tcp", ...]."""
    spec = spec.strip()
    port, _, proto = spec.partition("/")
    proto = (proto or "tcp").lower()
    port = port.rsplit(":", 1)[-1]
    lo, dash, hi = port.partition("-")
    if dash and lo.isdigit() and hi.isdigit() and 0 <= int(hi) - int(lo) <= MAX_PORTS:
        return [f"{p}/{proto}" for p in range(int(lo), int(hi) + 1)]
    return [f"{port}/{proto}"]


def norm_path(p: str) -> str:
    if not p:
        return p
    norm = posixpath.normpath(p)
    return "/" if norm == "//" else norm


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}


def duration(text: str) -> int | None:
    """Go `time.Duration` text (`30s`, `5m0s`, `1h2m`, `0s`) -> nanoseconds."""
    t = text.strip().strip('"')
    if t in ("0", ""):
        return 0
    pos, total = 0, 0.0
    for m in _DURATION.finditer(t):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _UNIT_NS[m.group(2)]
        pos = m.end()
    return int(round(total)) if pos == len(t) and pos else None


def health(value: Any) -> dict | None:
    if not isinstance(value, dict):
        return None
    test = value.get("Test")
    out: dict[str, Any] = {"Test": test if isinstance(test, list) else None}
    for k in ("Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"):
        v = value.get(k)
        out[k] = v if isinstance(v, int) and not isinstance(v, bool) else 0
    return out


def is_root(user: str) -> bool:
    name = user.split(":", 1)[0].strip()
    return name in ("", "0", "root")


# --------------------------------------------------------------------------- parsing steps


def health_step(text: str, raw: bool) -> dict | None:
    """HEALTHCHECK as recorded -> {"Test": list | joined str, durations in ns or None}."""
    text = text.strip()
    fields: dict[str, int | None] = dict.fromkeys(("Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"))
    if raw and not text.startswith(("&{", "{")):  # `&{...}`: a classic builder's record
        words = text.split()
        while words and words[0].startswith("--"):
            name, _, v = words.pop(0)[2:].partition("=")
            key = {
                "interval": "Interval",
                "timeout": "Timeout",
                "start-period": "StartPeriod",
                "start-interval": "StartInterval",
                "retries": "Retries",
            }.get(name)
            if key == "Retries":
                fields[key] = int(v) if v.isdigit() else None
            elif key:
                fields[key] = duration(v)
        rest = text[text.find(words[0]) :] if words else ""
        kind, _, body = rest.partition(" ")
        if kind.upper() == "NONE":
            return {"Test": ["NONE"], **fields}
        if kind.upper() != "CMD":
            return None
        argv = quoted_list(body)
        test = ["CMD", *argv] if argv is not None else ["CMD-SHELL", body.strip()]
        for k in ("Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"):
            if fields[k] is None:
                fields[k] = 0  # the flag was not given: the config leaves it zero
        return {"Test": test, **fields}
    if len(text) > 8192:
        return None  # not parsed (and not given to the regexes below)
    # classic 20.10 `%q`: &{["CMD" "x"] "30s" "3s" "0s" '\x02'}; later `%+v`: {Test:[CMD x] Interval:30s ...}
    m = re.match(r"&?\{\s*(\[.*?\])\s*((?:\"[^\"]*\"\s*)*)('(?:[^'\\]|\\.)*'|\d+)?\s*\}\s*$", text, re.DOTALL)
    if m:
        listed = quoted_list(m.group(1))
        if listed is None:
            return None
        test = listed
        durs = re.findall(r'"([^"]*)"', m.group(2))
        names = ["Interval", "Timeout", "StartPeriod", "StartInterval"]
        for k, d in zip(names, durs):
            fields[k] = duration(d)
        r = m.group(3)
        if r:
            fields["Retries"] = int(r) if r.isdigit() else (ord(go_unquote(r[1:-1])[:1] or "\0"))
        return {"Test": test, **fields}
    m = re.match(r"&?\{Test:\[(.*?)\]((?: \w+:\S*)*)\}\s*$", text, re.DOTALL)
    if m:
        for name, v in re.findall(r" (\w+):(\S*)", m.group(2)):
            if name in fields:
                fields[name] = int(v) if name == "Retries" and v.isdigit() else duration(v)
        return {"Test": m.group(1), **fields}  # %v of the slice: words joined by blanks
    return None


def health_equal(expected: dict, actual: dict | None) -> bool:
    if actual is None or actual.get("Test") is None:
        return False
    test = expected["Test"]
    if isinstance(test, str):
        if test != " ".join(actual["Test"]):
            return False
    elif test != actual["Test"]:
        return False
    return all(
        expected[k] is None or expected[k] == actual.get(k, 0)
        for k in ("Interval", "Timeout", "StartPeriod", "StartInterval", "Retries")
    )


def list_step(text: str, raw: bool) -> list[str]:
    """VOLUME / SHELL: JSON or `%v` of a slice (`[/a /b]`), or words as written."""
    t = text.strip()
    argv = quoted_list(t) if raw or '"' in t else None
    if argv is not None:
        return argv
    if t.startswith("[") and t.endswith("]"):
        t = t[1:-1]
    return t.split()


def ports_step(text: str, raw: bool, env: dict[str, str]) -> list[str]:
    t = text.strip()
    if t.startswith("map[") and t.endswith("]"):
        t = t[4:-1].replace(":{}", "")
    elif t.startswith("[") and t.endswith("]"):
        t = t[1:-1]
    words = [expand(w, env) for w in dockerfile_words(t)] if raw else t.split()
    out: list[str] = []
    for w in words:
        for part in w.split() if raw else [w]:
            out += port_keys(part)
    return out
