"""The final image config held to what the history's metadata steps set (issue 8, item 8).

`check_config(img, instructions)` replays the history's ENV, ARG, LABEL, CMD,
ENTRYPOINT, USER, WORKDIR, EXPOSE, VOLUME, STOPSIGNAL, HEALTHCHECK and SHELL steps
in order, the way the builder that wrote each line applied it, and compares the
result with `config.config` of the image. A value no step sets, or one that differs
from what the last step that sets it says, is `history.effect-mismatch`
(`evidence["key"]` is the config key: Entrypoint, Cmd, Env, User, WorkingDir,
ExposedPorts, Volumes, Labels, StopSignal, Healthcheck, Shell; also OnBuild, whose
triggers run in every build FROM the image, held to the ONBUILD steps where the
builder records them; "unchecked" for the info line).

How each builder records these steps (read in their sources):

- classic builder (moby daemon/builder/dockerfile/dispatchers.go): the values after
  word processing, unquoted: `ENV K=V K2=V2` (`KeyValuePair.String()`, so a value
  with spaces is ambiguous), `LABEL k=v`, `CMD %q` / `ENTRYPOINT %q` of the final
  argv (`["/bin/sh" "-c" "x"]` for the shell form, space-separated Go quoting),
  `USER %v`, `VOLUME %v` (`[/a /b]`), `EXPOSE` + the ports as written,
  `STOPSIGNAL %v`, `SHELL %v`, `HEALTHCHECK %q` (20.10: `&{["CMD" "x"] "30s" "3s"
  "0s" '\\x02'}`) or `%+v` (later), `WORKDIR` + the resolved path (a layer of its
  own). The metadata prefix is the SHELL argv (`/bin/sh -ec #(nop)  ...`).
  `beginStage` adds the default PATH when the base has none (evaluator.go
  setDefaultPath); ENTRYPOINT clears Cmd unless CMD was set in the stage.
- BuildKit (frontend/dockerfile/dockerfile2llb/convert.go): the same value
  formats (`commitToHistory(..., fmt.Sprintf("CMD %q", args))`), `EXPOSE %v` of the
  parsed ports (`[80/tcp]`, older `map[80/tcp:{}]`); FROM scratch starts from
  `emptyImage` (WorkingDir "/", default PATH); `--label` is copied into the config
  with no history entry (finalizeResultImage), so a BuildKit image's extra labels
  are only low.
- buildah (imagebuildah/stage_executor.go getCreatedBy): `/bin/sh -c #(nop) ` +
  `node.Original`, the Dockerfile line as written (quotes, `$VAR`, legacy `ENV K V`);
  ARG lines name the build args without their values. `io.buildah.version` is set
  at commit (IdentityLabel); `--label` becomes a LABEL line (executor.go). Its
  default OCI format drops HEALTHCHECK, SHELL and ONBUILD from the config (it warns)
  while keeping their history lines; a shell-form CMD/ENTRYPOINT uses /bin/sh -c
  whatever SHELL says (1.28).
- ONBUILD only records a trigger: it sets none of the keys above. BuildKit does not
  record it at all (dispatchOnbuild commits nothing), so a BuildKit image's OnBuild is
  not checked.

Where the history cannot say (docker commit and import, a base made outside any
Dockerfile, a builder whose grammar is unknown, kaniko without metadata records, a
history whose base part was squashed away, no metadata step at all), keys no later
step sets are "not checkable". One info finding lists them when such a step follows
steps that did record the config (a commit on a built image); otherwise nothing.
"""

from __future__ import annotations

import json
import posixpath
import re
from dataclasses import dataclass, field
from typing import Any

from forensics.findings import finding
from forensics.history.instructions import NOP, Instruction, parse_created_by
from forensics.models import Finding, Image

KEYS = ("Entrypoint", "Cmd", "Env", "User", "WorkingDir", "ExposedPorts", "Volumes", "Labels",
        "StopSignal", "Healthcheck", "Shell", "OnBuild")  # the values of evidence["key"]
SCALARS = ("Entrypoint", "Cmd", "User", "WorkingDir", "StopSignal", "Healthcheck", "Shell")

# What moby (oci.DefaultPathEnv), BuildKit (system.DefaultPathEnv) and buildah put in Env.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DEFAULT_SHELL = ["/bin/sh", "-c"]
# Variables that change what a program loads or runs before its own code.
LOADER_VARS = frozenset({
    "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONHOME",
    "NODE_OPTIONS", "NODE_PATH", "PERL5LIB", "PERL5OPT", "RUBYOPT", "RUBYLIB", "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS", "BASH_ENV", "ENV", "GCONV_PATH",
})  # fmt: skip
CRITICAL_KEYS = frozenset({"Entrypoint", "Cmd"})
BARRIER_KINDS = frozenset({"IMPORT", "COMMIT", "BASE", "UNKNOWN"})
RAW_BUILDERS = frozenset({"buildah", "kaniko"})  # record the Dockerfile line as written
WILD = "\x00"  # stands for the value of a variable the history does not give
MAX_TEXT = 65536  # a metadata line longer than this is not parsed (it is shown truncated)
MAX_PORTS = 4096  # a port range wider than this is compared as written


# --------------------------------------------------------------------------- values


@dataclass
class Slot:
    """What the history says one key (or one Env variable / label) holds."""

    alts: list[Any]  # acceptable normalized values
    step: int | None  # history index of the step that set it; None = a builder's default
    said: str = ""  # the step's own words, for the evidence
    optional: bool = False  # the builder may leave it out of the config (buildah OCI)


@dataclass
class _State:
    scalars: dict[str, Slot] = field(default_factory=dict)
    env: dict[str, Slot] = field(default_factory=dict)
    labels: dict[str, Slot] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)  # normalized port -> step
    port_patterns: list[tuple[str, int]] = field(default_factory=list)
    volumes: dict[str, int] = field(default_factory=dict)
    volume_patterns: list[tuple[str, int]] = field(default_factory=list)
    args: dict[str, str] = field(default_factory=dict)  # ARG values (WILD when not recorded)
    # Keys (and "Env"/"Labels"/"ExposedPorts"/"Volumes" members) the history cannot account
    # for: set when a barrier (commit, import, unknown builder) may have changed them.
    unknown: bool = False
    barrier: int | None = None
    # What the steps before the last barrier set: a value still equal to it was inherited,
    # not worth listing as unchecked.
    prior: dict[str, Any] = field(default_factory=dict)


def _matches(pattern: str, value: str) -> bool:
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


def _equal(expected: Any, actual: Any) -> bool:
    if isinstance(expected, str) and isinstance(actual, str):
        return _matches(expected, actual)
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(_equal(e, a) for e, a in zip(expected, actual))
    return expected == actual


def _safe(name: str) -> str:
    """A name from the input (a variable, a label, a port) fit for a terminal line."""
    text = json.dumps(name, ensure_ascii=True)[1:-1]
    return text if len(text) <= 120 else text[:117] + "..."


def _show(value: Any) -> str:
    """A value in words, safe for a terminal (json escapes control characters)."""
    if value is None:
        return "nothing"
    text = json.dumps(value, ensure_ascii=True, default=str)
    text = text.replace("\\u0000", "<build arg>")
    return text if len(text) <= 200 else text[:197] + "..."


# --------------------------------------------------------------------------- Go and Dockerfile words


_GO_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
               "\\": "\\", '"': '"', "'": "'"}
_GO_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"', re.DOTALL)


def _go_unquote(body: str) -> str:
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


def _quoted_list(text: str) -> list[str] | None:
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
        items.append(_go_unquote(m.group(1)))
        pos = m.end()
    if inner[pos:].strip(" ,"):
        return None
    return items


def _dockerfile_words(text: str) -> list[str]:
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


def _expand(word: str, env: dict[str, str]) -> str:
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
                        out.append(_expand(arg or "", env))
                    elif op not in (":+", "+"):
                        out.append("")
                elif value is None:
                    out.append(WILD)  # the history does not say
                elif value == WILD and op in (":-", ":+", "-", "+"):
                    out.append(WILD)  # a build arg's value: unknown, and so is the result
                elif op is None or op in (":?", "?"):
                    out.append(value)
                elif op in (":-", "-"):
                    out.append(_expand(arg or "", env) if op == ":-" and value == "" else value)
                else:  # ${V:+w} / ${V+w}
                    out.append(_expand(arg or "", env) if (value != "" or op == "+") else "")
                i = m.end()
                continue
        out.append(c)
        i += 1
    text = "".join(out)
    return re.sub(WILD + "+", WILD, text)


def _raw_pairs(text: str, env: dict[str, str]) -> list[tuple[str, str]]:
    """ENV/LABEL as written (buildah, kaniko): `K=V K2="a b"` or the legacy `K V`."""
    words = _dockerfile_words(text)
    if not words:
        return []
    if "=" not in words[0]:
        key, _, value = text.strip().partition(" ")
        return [(_expand(key, env), _expand(value.strip(), env))]
    out = []
    for w in words:
        key, eq, value = w.partition("=")
        if eq:
            out.append((_expand(key, env), _expand(value, env)))
    return out


def _processed_pairs(text: str, oracle: dict[str, Any]) -> list[tuple[str, str]]:
    """ENV/LABEL as classic and BuildKit record them: `K=V K2=V2`, unquoted, so `K=a b=c` may
    be one pair or two. Split at every `NAME=`; join a pair with the words after it where that
    makes it the value the config holds (the config is then the tie-breaker, never the truth)."""
    pairs: list[tuple[str, str, str]] = []  # key, value, the words as written
    for tok in text.split(" "):
        key, eq, value = tok.partition("=")
        if eq and key:
            pairs.append((key, value, tok))
        elif pairs:
            k, v, raw = pairs[-1]
            pairs[-1] = (k, v + " " + tok, raw + " " + tok)
        elif tok:
            pairs.append((tok, "", tok))  # no `=`: a legacy form or a bare word
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


def _argv(value: Any) -> list[str] | None:
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    return None  # null and [] both mean "not set" at run time


def _env_map(value: Any) -> tuple[dict[str, str | None], list[str]]:
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


def _port_keys(spec: str) -> list[str]:
    """`8080`, `8080/TCP`, `1.2.3.4:80:8080/udp`, `7000-7002` -> ["8080/tcp", ...]."""
    spec = spec.strip()
    port, _, proto = spec.partition("/")
    proto = (proto or "tcp").lower()
    port = port.rsplit(":", 1)[-1]
    lo, dash, hi = port.partition("-")
    if dash and lo.isdigit() and hi.isdigit() and 0 <= int(hi) - int(lo) <= MAX_PORTS:
        return [f"{p}/{proto}" for p in range(int(lo), int(hi) + 1)]
    return [f"{port}/{proto}"]


def _norm_path(p: str) -> str:
    if not p:
        return p
    norm = posixpath.normpath(p)
    return "/" if norm == "//" else norm


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
            "m": 60_000_000_000, "h": 3_600_000_000_000}


def _duration(text: str) -> int | None:
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


def _health(value: Any) -> dict | None:
    if not isinstance(value, dict):
        return None
    test = value.get("Test")
    out = {"Test": test if isinstance(test, list) else None}
    for k in ("Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"):
        v = value.get(k)
        out[k] = v if isinstance(v, int) and not isinstance(v, bool) else 0
    return out


def _is_root(user: str) -> bool:
    name = user.split(":", 1)[0].strip()
    return name in ("", "0", "root")


# --------------------------------------------------------------------------- parsing steps


def _health_step(ins: Instruction, raw: bool) -> dict | None:
    """HEALTHCHECK as recorded -> {"Test": list | joined str, durations in ns or None}."""
    text = ins.args.strip()
    fields = {"Interval": None, "Timeout": None, "StartPeriod": None, "StartInterval": None, "Retries": None}
    if raw and not text.startswith(("&{", "{")):  # `&{...}`: a classic builder's record
        words = text.split()
        while words and words[0].startswith("--"):
            name, _, v = words.pop(0)[2:].partition("=")
            key = {"interval": "Interval", "timeout": "Timeout", "start-period": "StartPeriod",
                   "start-interval": "StartInterval", "retries": "Retries"}.get(name)
            if key == "Retries":
                fields[key] = int(v) if v.isdigit() else None
            elif key:
                fields[key] = _duration(v)
        rest = text[text.find(words[0]):] if words else ""
        kind, _, body = rest.partition(" ")
        if kind.upper() == "NONE":
            return {"Test": ["NONE"], **fields}
        if kind.upper() != "CMD":
            return None
        argv = _quoted_list(body)
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
        test = _quoted_list(m.group(1))
        if test is None:
            return None
        durs = re.findall(r'"([^"]*)"', m.group(2))
        names = ["Interval", "Timeout", "StartPeriod", "StartInterval"]
        for k, d in zip(names, durs):
            fields[k] = _duration(d)
        r = m.group(3)
        if r:
            fields["Retries"] = int(r) if r.isdigit() else (ord(_go_unquote(r[1:-1])[:1] or "\0"))
        return {"Test": test, **fields}
    m = re.match(r"&?\{Test:\[(.*?)\]((?: \w+:\S*)*)\}\s*$", text, re.DOTALL)
    if m:
        for name, v in re.findall(r" (\w+):(\S*)", m.group(2)):
            if name in fields:
                fields[name] = int(v) if name == "Retries" and v.isdigit() else _duration(v)
        return {"Test": m.group(1), **fields}  # %v of the slice: words joined by blanks
    return None


def _health_equal(expected: dict, actual: dict | None) -> bool:
    if actual is None or actual.get("Test") is None:
        return False
    test = expected["Test"]
    if isinstance(test, str):
        if test != " ".join(actual["Test"]):
            return False
    elif test != actual["Test"]:
        return False
    return all(expected[k] is None or expected[k] == actual.get(k, 0)
               for k in ("Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"))


def _list_step(text: str, raw: bool) -> list[str]:
    """VOLUME / SHELL: JSON or `%v` of a slice (`[/a /b]`), or words as written."""
    t = text.strip()
    argv = _quoted_list(t) if raw or '"' in t else None
    if argv is not None:
        return argv
    if t.startswith("[") and t.endswith("]"):
        t = t[1:-1]
    return t.split()


def _ports_step(text: str, raw: bool, env: dict[str, str]) -> list[str]:
    t = text.strip()
    if t.startswith("map[") and t.endswith("]"):
        t = t[4:-1].replace(":{}", "")
    elif t.startswith("[") and t.endswith("]"):
        t = t[1:-1]
    words = [_expand(w, env) for w in _dockerfile_words(t)] if raw else t.split()
    out: list[str] = []
    for w in words:
        for part in (w.split() if raw else [w]):
            out += _port_keys(part)
    return out


# --------------------------------------------------------------------------- replay


_BUILDAH_SUFFIX = re.compile(r"(\|(?:unsetLabel|unsetAnnotation|inheritLabels|inheritAnnotations|force-mtime"
                             r"|timestamp|source-date-epoch)=[^|]*)+$")


class _Replay:
    def __init__(self, img: Image, ins: list[Instruction], cfg: dict):
        self.img, self.ins, self.cfg = img, ins, cfg
        self.s = _State()
        self.env_actual, _ = _env_map(cfg.get("Env"))
        labels = cfg.get("Labels")
        self.labels_actual = {k: v for k, v in labels.items() if isinstance(v, str)} if isinstance(labels, dict) else {}

    def env_now(self) -> dict[str, str]:
        """What `$NAME` expands to at this point of the build (for lines recorded as written)."""
        out = {k: WILD for k in self.s.args}
        out.update({k: v for k, v in self.s.args.items()})
        for k, slot in self.s.env.items():
            if len(slot.alts) == 1 and isinstance(slot.alts[0], str):
                out[k] = slot.alts[0]
        if "PATH" not in self.s.env and not self.s.unknown:
            out["PATH"] = DEFAULT_PATH  # the builders' default, in force from FROM on
        if not self.s.unknown:
            out[WILD] = ""  # an undefined variable expands to nothing (after a barrier: unknown)
        return out

    def barrier(self, i: int) -> None:
        s = self.s
        prior = {**s.prior, **{k: v for k, v in s.scalars.items()}}
        prior.update({f"Env {k}": v for k, v in s.env.items()})
        prior.update({f"Labels {k}": v for k, v in s.labels.items()})
        prior.update({f"ExposedPorts {k}": Slot([k], v) for k, v in s.ports.items()})
        prior.update({f"Volumes {k}": Slot([k], v) for k, v in s.volumes.items()})
        s.prior = prior
        s.scalars.clear()
        s.env.clear()
        s.labels.clear()
        s.ports.clear()
        s.port_patterns.clear()
        s.volumes.clear()
        s.volume_patterns.clear()
        s.unknown, s.barrier = True, i

    def set(self, key: str, alts: list[Any], i: int, optional: bool = False) -> None:
        self.s.scalars[key] = Slot(alts=alts, step=i, said=self._said(i), optional=optional)

    def _said(self, i: int) -> str:
        return self.img.history[i].created_by or ""

    def apply(self, i: int, ins: Instruction) -> None:
        kind = ins.kind
        raw = ins.builder in RAW_BUILDERS
        text = _step_text(ins)[:MAX_TEXT]
        if raw and ins.builder == "buildah":
            text = _BUILDAH_SUFFIX.sub("", text)
        env = self.env_now() if raw else {}
        s = self.s
        if kind == "ARG":
            for w in _dockerfile_words(text) if raw else text.split():
                k, eq, v = w.partition("=")
                if k:
                    s.args[k] = _expand(v, env) if eq and raw else (v if eq else WILD)
        elif kind in ("ENV", "LABEL"):
            target, oracle = (s.env, self.env_actual) if kind == "ENV" else (s.labels, self.labels_actual)
            for k, alts in _pairs(text, raw, env, oracle).items():
                target[k] = Slot(alts=alts, step=i, said=self._said(i))
            if kind == "LABEL" and raw:
                for k in re.findall(r"\|unsetLabel=([^|]*)", ins.args):
                    s.labels[k] = Slot(alts=[None], step=i, said=self._said(i))
        elif kind in ("CMD", "ENTRYPOINT"):
            argv = _quoted_list(text)
            if argv is not None:
                alts: list[Any] = [_argv(argv)]
            elif raw:
                # Shell form as written: buildah 1.28 runs it with /bin/sh -c whatever SHELL says.
                shell = s.scalars.get("Shell")
                shells = [DEFAULT_SHELL] + [a for a in (shell.alts if shell else []) if isinstance(a, list)]
                alts = [[*sh, text.strip()] for sh in shells]
            else:
                alts = [None] if not text.strip() else [WILD + "unparsed"]
            if kind == "CMD":
                self.set("Cmd", alts, i)
            else:
                self.set("Entrypoint", alts, i)
                # ENTRYPOINT clears Cmd unless CMD was set in this stage (moby dispatchEntrypoint,
                # BuildKit dispatchEntrypoint); stages are not marked in the history, so both.
                cmd = s.scalars.get("Cmd")
                if cmd is None:
                    if not s.unknown:
                        self.set("Cmd", [None], i)
                elif None not in cmd.alts:
                    cmd.alts = [*cmd.alts, None]
        elif kind == "USER":
            self.set("User", [_expand(text.strip(), env) if raw else text.strip()], i)
        elif kind == "WORKDIR":
            path = _expand(text.strip(), env) if raw else text.strip()
            if not path.startswith("/"):
                cur = s.scalars.get("WorkingDir")
                base = cur.alts[0] if cur and len(cur.alts) == 1 and isinstance(cur.alts[0], str) else (
                    "/" if cur is None and not s.unknown else WILD)
                path = (base.rstrip("/") or "") + "/" + path
            self.set("WorkingDir", [_norm_path(path) if WILD not in path else path], i)
        elif kind == "STOPSIGNAL":
            self.set("StopSignal", [_expand(text.strip(), env) if raw else text.strip()], i)
        elif kind == "SHELL":
            self.set("Shell", [_list_step(text, raw) or None], i, optional=ins.builder == "buildah")
        elif kind == "HEALTHCHECK":
            h = _health_step(ins, raw)
            self.set("Healthcheck", [h] if h is not None else [WILD + "unparsed"], i,
                     optional=ins.builder == "buildah")
        elif kind == "EXPOSE":
            for p in _ports_step(text, raw, env):
                if WILD in p:
                    s.port_patterns.append((p, i))
                else:
                    s.ports[p] = i
        elif kind == "VOLUME":
            for v in _list_step(text, raw):
                v = _expand(v, env) if raw else v
                if WILD in v:
                    s.volume_patterns.append((v, i))
                else:
                    s.volumes[v] = i


def _pairs(text: str, raw: bool, env: dict[str, str], oracle: dict[str, Any]) -> dict[str, list[str]]:
    """ENV/LABEL pairs -> {key: acceptable values}. A line with one space after `#(nop)` is
    buildah's (as written) or a pre-17 classic builder's (processed, unquoted): for the keys
    the as-written reading finds, the processed reading is accepted too."""
    if not raw:
        return {k: [v] for k, v in _processed_pairs(text, oracle)}
    out = {k: [v] for k, v in _raw_pairs(text, env)}
    for k, v in _processed_pairs(text, oracle):
        if k in out and v not in out[k]:
            out[k].append(v)
    return out


def _step_text(ins: Instruction) -> str:
    """The words after the keyword, with trailing blanks kept: classic and BuildKit write
    `ENV K=` + the value, so `SPACED="  a  b  "` ends in two blanks (`ins.args` is stripped)."""
    raw = ins.raw
    at = raw.find(NOP)
    body = raw[at + len(NOP):] if at >= 0 else raw
    m = re.match(r"\s*" + re.escape(ins.kind) + r"(?:[ \t]|$)", body, re.IGNORECASE)
    if not m:
        return ins.args
    text = body[m.end():]
    if ins.builder in RAW_BUILDERS:
        return text.strip()
    return text.lstrip(" ") if ins.kind in ("ENV", "LABEL") else text.strip()


def _barrier(ins: Instruction, kaniko_records_metadata: bool) -> bool:
    if ins.kind in BARRIER_KINDS:
        return True
    # kaniko records metadata steps only with --force-build-metadata.
    return ins.builder == "kaniko" and not kaniko_records_metadata and not ins.metadata_only


def _starts_from_scratch(img: Image, ins: list[Instruction]) -> bool:
    """Whether the history begins where the config was empty (FROM scratch, a base's own
    history included). A first RUN needs a base whose history is missing; buildah --squash
    keeps only the last stage's entries, one layer owned by the last, `FROM <base>` noted."""
    if not ins or ins[0].kind == "RUN":
        return False
    owners = [h for h in img.history if not h.empty_layer]
    for h in img.history:
        c = (h.comment or "").strip()
        if c.startswith("FROM ") and c[5:].strip() not in ("", "scratch") and len(owners) == 1 \
                and owners[0] is img.history[-1]:
            return False
    return True


# --------------------------------------------------------------------------- checking


@dataclass
class _Mismatch:
    key: str
    name: str | None
    expected: Any
    actual: Any
    step: int | None
    said: str
    severity: str
    why: str


def check_config(img: Image, instructions: list[Instruction] | None = None) -> list[Finding]:
    """Findings for one image: every config value the history's steps do not set."""
    if not img.config_text or not img.history:
        return []
    try:
        doc = json.loads(img.config_text)
    except (ValueError, RecursionError):
        return []  # archive.malformed is the resolver's
    cfg = doc.get("config") if isinstance(doc, dict) else None
    cfg = cfg if isinstance(cfg, dict) else {}
    ins = instructions if instructions is not None and len(instructions) == len(img.history) else [
        parse_created_by(_clean(h.created_by), h.comment, h.author) for h in img.history]
    if instructions is not None:
        ins = [parse_created_by(_clean(h.created_by), h.comment, h.author) if "\x00" in (h.created_by or "") else x
               for h, x in zip(img.history, ins)]
    rp = _Replay(img, ins, cfg)
    if not _starts_from_scratch(img, ins):
        rp.barrier(-1)
    kaniko_meta = any(x.builder == "kaniko" and x.metadata_only for x in ins)
    for i, x in enumerate(ins):
        if _barrier(x, kaniko_meta):
            rp.barrier(i)
        elif x.kind != "ONBUILD":  # a trigger for later builds: sets nothing now
            rp.apply(i, x)
    buildah = any(x.builder == "buildah" or (h.comment or "").startswith("FROM ") for h, x in zip(img.history, ins))
    buildkit_last = bool(ins) and ins[-1].builder == "buildkit"
    has_metadata = any(x.metadata_only or x.kind == "WORKDIR" for x in ins)
    mismatches, unchecked = _compare(rp, cfg, buildah=buildah, buildkit_last=buildkit_last)
    if not buildkit_last:  # BuildKit never records ONBUILD (dispatchOnbuild commits nothing)
        mismatches += _onbuild(img, ins, cfg, rp.s)
    out = [_finding(img, m) for m in mismatches]
    if not has_metadata:
        return []  # ko, bazel, apko, crane mutate ...: the history says nothing about the config
    barrier = rp.s.barrier
    # Said only where a commit, import or unknown step comes after steps that did record the
    # config: a base made outside any Dockerfile (its own first entry) is not worth a line.
    if unchecked and barrier is not None and barrier > 0 and any(x.metadata_only for x in ins[:barrier]):
        out.append(finding(
            "history.effect-mismatch", "info", "config (not checkable)",
            f"the config's {', '.join(_safe(u) for u in unchecked)} cannot be held to the history: history[{barrier}] "
            f"({ins[barrier].kind.lower()}, {ins[barrier].builder}) may have set them with no step of its own",
            image=img.index, history=barrier, evidence={"key": "unchecked", "keys": unchecked}))
    return out


def _clean(text: str | None) -> str | None:
    return text.replace("\x00", "") if text else text  # WILD is ours: never from the input


def _compare(rp: _Replay, cfg: dict, *, buildah: bool, buildkit_last: bool) -> tuple[list[_Mismatch], list[str]]:
    s = rp.s
    out: list[_Mismatch] = []
    unchecked: list[str] = []

    def miss(key, name, expected, actual, slot_or_step, severity, why):
        step = slot_or_step.step if isinstance(slot_or_step, Slot) else slot_or_step
        said = slot_or_step.said if isinstance(slot_or_step, Slot) else (
            rp.img.history[step].created_by or "" if step is not None and step >= 0 else "")
        out.append(_Mismatch(key, name, expected, actual, step, said, severity, why))

    # Scalars
    actuals = {
        "Entrypoint": _argv(cfg.get("Entrypoint")), "Cmd": _argv(cfg.get("Cmd")),
        "User": cfg.get("User") if isinstance(cfg.get("User"), str) else "",
        "WorkingDir": _norm_path(cfg["WorkingDir"]) if isinstance(cfg.get("WorkingDir"), str) else "",
        "StopSignal": cfg.get("StopSignal") if isinstance(cfg.get("StopSignal"), str) else "",
        "Healthcheck": _health(cfg.get("Healthcheck")), "Shell": _argv(cfg.get("Shell")),
    }
    empty = {"Entrypoint": None, "Cmd": None, "User": "", "WorkingDir": "", "StopSignal": "", "Healthcheck": None,
             "Shell": None}
    for key in SCALARS:
        actual = actuals[key]
        slot = s.scalars.get(key)
        if slot is None:
            defaults = [empty[key]] + (["/"] if key == "WorkingDir" else [])
            if actual in defaults or (key == "Healthcheck" and actual and actual.get("Test") in (None, [])):
                continue
            if s.unknown:
                if not _inherited(s, key, actual):
                    unchecked.append(key)
                continue
            sev = _severity(key, None, None, actual)
            miss(key, None, None, actual, None, sev, "no history step sets it")
            continue
        if actual is None and slot.optional:
            continue  # buildah's OCI format drops it
        if key == "Healthcheck":
            ok = any(isinstance(a, dict) and _health_equal(a, actual) for a in slot.alts)
        elif key == "WorkingDir":
            ok = any(_equal(a, actual) or (a in ("", "/") and actual in ("", "/")) for a in slot.alts)
        else:
            ok = any(_equal(a, actual) for a in slot.alts)
        if not ok:
            expected = slot.alts[0] if len(slot.alts) == 1 else slot.alts
            miss(key, None, expected, actual, slot, _severity(key, None, slot.alts[0], actual),
                 "differs from what the last step that sets it says")

    # Env
    env_actual, dups = _env_map(cfg.get("Env"))
    for name in sorted(set(env_actual) | set(s.env)):
        actual = env_actual.get(name)
        slot = s.env.get(name)
        if slot is None:
            if name not in env_actual:
                continue
            if name == "PATH" and not s.unknown and actual == DEFAULT_PATH:
                continue  # moby setDefaultPath, BuildKit emptyImage/dispatch, buildah
            if s.unknown:
                if not _inherited(s, f"Env {name}", actual):
                    unchecked.append(f"Env {name}")
                continue
            miss("Env", name, None, actual, None, _severity("Env", name, None, actual), "no history step sets it")
        elif not any(_equal(a, actual) for a in slot.alts) or name in dups:
            miss("Env", name, slot.alts[0], actual, slot, _severity("Env", name, slot.alts[0], actual),
                 "differs from what the last step that sets it says" if name not in dups else
                 "is listed twice with different values")

    # Labels
    for name in sorted(set(rp.labels_actual) | set(s.labels)):
        actual = rp.labels_actual.get(name)
        slot = s.labels.get(name)
        if slot is None and name == "io.buildah.version" and buildah and re.fullmatch(r"[0-9][0-9A-Za-z.+~-]{0,40}",
                                                                                          actual or ""):
            continue  # buildah's identity label, set at commit
        if slot is None:
            if s.unknown:
                if not _inherited(s, f"Labels {name}", actual):
                    unchecked.append(f"Labels {name}")
                continue
            sev = "low" if buildkit_last else "high"  # BuildKit's --label leaves no history entry
            miss("Labels", name, None, actual, None, sev, "no history step sets it" + (
                " (BuildKit applies --label without a history entry)" if buildkit_last else ""))
        elif not any(_equal(a, actual) for a in slot.alts):
            sev = "low" if buildkit_last else "high"
            miss("Labels", name, slot.alts[0], actual, slot, sev, "differs from what the last step that sets it says"
                 + (" (BuildKit's --label overrides LABEL without a history entry)" if buildkit_last else ""))

    # ExposedPorts and Volumes
    ports = cfg.get("ExposedPorts")
    actual_ports: set[str] = set()
    if isinstance(ports, dict):
        for p in ports:
            if isinstance(p, str):
                actual_ports.update(_port_keys(p))
    _sets(miss, unchecked, "ExposedPorts", actual_ports, s.ports, s.port_patterns, s.unknown, s)
    vols = cfg.get("Volumes")
    actual_vols = {v for v in vols if isinstance(v, str)} if isinstance(vols, dict) else set()
    _sets(miss, unchecked, "Volumes", actual_vols, s.volumes, s.volume_patterns, s.unknown, s)
    return out, unchecked


def _onbuild(img: Image, ins: list[Instruction], cfg: dict, s: _State) -> list[_Mismatch]:
    """OnBuild triggers run in every build FROM this image. Each one must be the expression
    of an ONBUILD step (classic and buildah record `ONBUILD <expression>`); a child build runs
    and clears its base's triggers, so recorded ones may be gone (stages are not marked)."""
    actual = cfg.get("OnBuild")
    if not isinstance(actual, list):
        return []
    recorded: dict[str, int] = {}
    for i, x in enumerate(ins):
        if x.kind == "ONBUILD":
            recorded[" ".join(_step_text(x).split())] = i
    out = []
    for item in actual:
        if not isinstance(item, str) or " ".join(item.split()) in recorded:
            continue
        if s.unknown and s.barrier is not None and s.barrier >= 0:
            continue  # a commit may carry any trigger; not worth more than the unchecked line
        out.append(_Mismatch("OnBuild", item, None, item, None, "", "high", "no history step sets it"))
    return out


def _inherited(s: _State, key: str, actual: Any) -> bool:
    slot = s.prior.get(key)
    if key == "Env PATH" and actual == DEFAULT_PATH:
        return True
    return slot is not None and any(_equal(a, actual) for a in slot.alts)


def _sets(miss, unchecked, key, actual: set[str], expected: dict[str, int], patterns, unknown: bool,
          s: _State) -> None:
    for item in sorted(actual - set(expected)):
        hit = next((step for pat, step in patterns if _matches(pat, item)), None)
        if hit is not None:
            continue
        if unknown:
            if not _inherited(s, f"{key} {item}", item):
                unchecked.append(f"{key} {item}")
            continue
        miss(key, item, None, item, None, "high", "no history step sets it")
    for item in sorted(set(expected) - actual):
        miss(key, item, item, None, expected[item], "high", "a step sets it but the config does not hold it")


def _severity(key: str, name: str | None, expected: Any, actual: Any) -> str:
    if key in CRITICAL_KEYS:
        return "critical"
    if key == "User":
        return "critical" if isinstance(actual, str) and _is_root(actual) and not (
            isinstance(expected, str) and _is_root(expected) and WILD not in expected) else "high"
    if key == "Env" and name is not None:
        if name in LOADER_VARS and actual is not None:
            return "critical"
        if name == "PATH" and isinstance(actual, str):
            return "critical" if _path_shadows(expected if isinstance(expected, str) else DEFAULT_PATH, actual) \
                else "high"
    return "high"


def _path_shadows(expected: str, actual: str) -> bool:
    """Whether `actual` searches a directory the history does not name before one it does,
    or reorders them: then a program can be shadowed. Dropped or appended ones cannot."""
    want = [d for d in expected.split(":") if WILD not in d]
    seen_new = False
    order = []
    for d in actual.split(":"):
        if d in want:
            if seen_new:
                return True
            order.append(want.index(d))
        else:
            seen_new = True
    return order != sorted(order)


def _finding(img: Image, m: _Mismatch) -> Finding:
    name = _safe(m.name) if m.name is not None else None
    what = f"{m.key} {name}" if name is not None and m.key in ("Env", "Labels") else m.key
    if m.key == "OnBuild":
        what = "OnBuild"
        detail = (f"the config's OnBuild holds the trigger {_show(m.name)}, which every build FROM this image "
                  "runs, but no ONBUILD step records it")
    elif m.key in ("ExposedPorts", "Volumes"):
        what = f"{m.key} {name}"
        if m.actual is None:
            detail = (f"history[{m.step}] ({_show(m.said)}) sets {m.key} entry {_show(m.name)}, but the config "
                      "does not hold it")
        else:
            detail = f"the config's {m.key} holds {_show(m.name)}, but no history step sets it"
    elif m.expected is None and m.step is None:
        detail = f"the config's {what} is {_show(m.actual)}, but no history step sets it"
    else:
        detail = (f"the config's {what} is {_show(m.actual)}, but history[{m.step}] ({_show(m.said)}) sets "
                  f"{_show(m.expected)}")
    if m.severity == "critical":
        detail += {"User": ": the container runs as root", "Env": ": it changes what the container's programs load "
                   "or which program a name runs"}.get(m.key, ": it changes what the container runs")
    evidence = {"key": m.key, "expected": _show(m.expected), "actual": _show(m.actual), "step": m.step,
                "reason": m.why}
    if m.name is not None:
        evidence["name"] = m.name
    return finding("history.effect-mismatch", m.severity, f"config {what}"[:200], detail, image=img.index,
                   history=m.step if m.step is not None and m.step >= 0 else None, evidence=evidence)
