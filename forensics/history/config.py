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
import re
from dataclasses import dataclass, field
from typing import Any

from forensics.findings import Code, finding
from forensics.history import config_words as cw
from forensics.history.config_words import WILD
from forensics.history.instructions import NOP, Instruction, parse_created_by
from forensics.models import Finding, Image

RAISES: tuple[Code, ...] = ("history.effect-mismatch",)

KEYS = (
    "Entrypoint",
    "Cmd",
    "Env",
    "User",
    "WorkingDir",
    "ExposedPorts",
    "Volumes",
    "Labels",
    "StopSignal",
    "Healthcheck",
    "Shell",
    "OnBuild",
)  # the values of evidence["key"]
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
MAX_TEXT = 65536  # a metadata line longer than this is not parsed (it is shown truncated)


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


def _equal(expected: Any, actual: Any) -> bool:
    if isinstance(expected, str) and isinstance(actual, str):
        return cw.matches(expected, actual)
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


# --------------------------------------------------------------------------- replay


# Newer buildah appends `|unsetLabel=K`, `|inheritLabels=false`, ... to the line (stage_executor.go
# buildMetadata): not part of the instruction.
_BUILDAH_MARKS = re.compile(
    r"(?:unsetLabel|unsetAnnotation|inheritLabels|inheritAnnotations|force-mtime"
    r"|timestamp|source-date-epoch)="
)


def _strip_buildah_marks(text: str) -> str:
    while (at := text.rfind("|")) >= 0 and _BUILDAH_MARKS.match(text, at + 1):
        text = text[:at]
    return text


class _Replay:
    def __init__(self, img: Image, ins: list[Instruction], cfg: dict):
        self.img, self.ins, self.cfg = img, ins, cfg
        self.s = _State()
        self.env_actual, _ = cw.env_map(cfg.get("Env"))
        labels = cfg.get("Labels")
        self.labels_actual = {k: v for k, v in labels.items() if isinstance(v, str)} if isinstance(labels, dict) else {}

    def env_now(self) -> dict[str, str]:
        """What `$NAME` expands to at this point of the build (for lines recorded as written)."""
        out = dict(self.s.args)
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
            text = _strip_buildah_marks(text)
        env = self.env_now() if raw else {}
        s = self.s
        if kind == "ARG":
            for w in cw.dockerfile_words(text) if raw else text.split():
                k, eq, v = w.partition("=")
                if k:
                    s.args[k] = cw.expand(v, env) if eq and raw else (v if eq else WILD)
        elif kind in ("ENV", "LABEL"):
            target, oracle = (s.env, self.env_actual) if kind == "ENV" else (s.labels, self.labels_actual)
            for k, pair_alts in _pairs(text, raw, env, oracle).items():
                target[k] = Slot(alts=pair_alts, step=i, said=self._said(i))
            if kind == "LABEL" and raw:
                for k in re.findall(r"\|unsetLabel=([^|]*)", ins.args):
                    s.labels[k] = Slot(alts=[None], step=i, said=self._said(i))
        elif kind in ("CMD", "ENTRYPOINT"):
            argv = cw.quoted_list(text)
            if argv is not None:
                alts: list[Any] = [cw.argv(argv)]
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
            self.set("User", [cw.expand(text.strip(), env) if raw else text.strip()], i)
        elif kind == "WORKDIR":
            path = cw.expand(text.strip(), env) if raw else text.strip()
            if not path.startswith("/"):
                cur = s.scalars.get("WorkingDir")
                base = (
                    cur.alts[0]
                    if cur and len(cur.alts) == 1 and isinstance(cur.alts[0], str)
                    else ("/" if cur is None and not s.unknown else WILD)
                )
                path = (base.rstrip("/") or "") + "/" + path
            self.set("WorkingDir", [cw.norm_path(path) if WILD not in path else path], i)
        elif kind == "STOPSIGNAL":
            self.set("StopSignal", [cw.expand(text.strip(), env) if raw else text.strip()], i)
        elif kind == "SHELL":
            self.set("Shell", [cw.list_step(text, raw) or None], i, optional=ins.builder == "buildah")
        elif kind == "HEALTHCHECK":
            h = cw.health_step(ins.args, raw)
            self.set("Healthcheck", [h] if h is not None else [WILD + "unparsed"], i, optional=ins.builder == "buildah")
        elif kind == "EXPOSE":
            for p in cw.ports_step(text, raw, env):
                if WILD in p:
                    s.port_patterns.append((p, i))
                else:
                    s.ports[p] = i
        elif kind == "VOLUME":
            for v in cw.list_step(text, raw):
                v = cw.expand(v, env) if raw else v
                if WILD in v:
                    s.volume_patterns.append((v, i))
                else:
                    s.volumes[v] = i


def _pairs(text: str, raw: bool, env: dict[str, str], oracle: dict[str, Any]) -> dict[str, list[str]]:
    """ENV/LABEL pairs -> {key: acceptable values}. A line with one space after `#(nop)` is
    buildah's (as written) or a pre-17 classic builder's (processed, unquoted): for the keys
    the as-written reading finds, the processed reading is accepted too."""
    if not raw:
        return {k: [v] for k, v in cw.processed_pairs(text, oracle)}
    out = {k: [v] for k, v in cw.raw_pairs(text, env)}
    for k, v in cw.processed_pairs(text, oracle):
        if k in out and v not in out[k]:
            out[k].append(v)
    return out


def _step_text(ins: Instruction) -> str:
    """The words after the keyword, with trailing blanks kept: classic and BuildKit write
    `ENV K=` + the value, so `SPACED="  a  b  "` ends in two blanks (`ins.args` is stripped)."""
    keyword = re.compile(r"\s*" + re.escape(ins.kind) + r"(?:[ \t]|$)", re.IGNORECASE)
    raw = ins.raw
    m = keyword.match(raw)  # BuildKit, kaniko: the line starts with its keyword
    if not m:
        at = raw.find(NOP)  # classic, buildah: `<shell> #(nop) KEYWORD ...`
        m = keyword.match(raw, at + len(NOP)) if at >= 0 else None
        if not m:
            return ins.args
    body = raw
    text = body[m.end() :]
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
        if (
            c.startswith("FROM ")
            and c[5:].strip() not in ("", "scratch")
            and len(owners) == 1
            and owners[0] is img.history[-1]
        ):
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


_BUILDAH_NOP = re.compile(
    r"#\(nop\) (?:ENV|LABEL|CMD|ENTRYPOINT|EXPOSE|USER|VOLUME|WORKDIR|SHELL|HEALTHCHECK|"
    r"STOPSIGNAL|ONBUILD|MAINTAINER|ARG) "
)


def check_config(
    img: Image, instructions: list[Instruction | None] | None = None, doc: dict | None = None
) -> list[Finding]:
    """Findings for one image: every config value the history's steps do not set.
    `doc` is the config as the resolver parsed it (parsing it again would double the
    memory a hostile, deeply nested config costs); without it, `img.config_text` is read."""
    if not img.history or (doc is None and not img.config_text):
        return []
    if doc is None:
        try:
            doc = json.loads(img.config_text or "")
        except (ValueError, RecursionError):
            return []  # archive.malformed is the resolver's
    cfg = doc.get("config") if isinstance(doc, dict) else None
    cfg = cfg if isinstance(cfg, dict) else {}
    if instructions is None or len(instructions) != len(img.history):
        instructions = [None] * len(img.history)
    # WILD (NUL) is ours: a line holding one is parsed again without it.
    ins = [
        x
        if x is not None and WILD not in (h.created_by or "")
        else parse_created_by((h.created_by or "").replace(WILD, ""), h.comment, h.author)
        for h, x in zip(img.history, instructions)
    ]
    if not any(x.metadata_only or x.kind == "WORKDIR" for x in ins):
        return []  # ko, bazel, apko, crane mutate ...: the history says nothing about the config
    rp = _Replay(img, ins, cfg)
    if not _starts_from_scratch(img, ins):
        rp.barrier(-1)
    kaniko_meta = any(x.builder == "kaniko" and x.metadata_only for x in ins)
    for i, x in enumerate(ins):
        if _barrier(x, kaniko_meta):
            rp.barrier(i)
        elif x.kind != "ONBUILD":  # a trigger for later builds: sets nothing now
            rp.apply(i, x)
    # buildah writes one space after #(nop) before a metadata instruction, the classic
    # builder two (FROM scratch leaves no `FROM <id>` comment to tell them apart by).
    buildah = any(
        x.builder == "buildah" or (h.comment or "").startswith("FROM ") or _BUILDAH_NOP.search(h.created_by or "")
        for h, x in zip(img.history, ins)
    )
    # BuildKit applies --label and ONBUILD with no history entry; a BuildKit step anywhere may be the
    # one that did (the final stage may add no line of its own).
    buildkit = any(x.builder == "buildkit" for x in ins)
    mismatches, unchecked = _compare(rp, cfg, buildah=buildah, buildkit=buildkit)
    if not buildkit:  # BuildKit never records ONBUILD (dispatchOnbuild commits nothing)
        mismatches += _onbuild(img, ins, cfg, rp.s)
    out = [_finding(img, m) for m in mismatches]
    barrier = rp.s.barrier
    # Said only where a commit, import or unknown step comes after steps that did record the
    # config: a base made outside any Dockerfile (its own first entry) is not worth a line.
    if unchecked and barrier is not None and barrier > 0 and any(x.metadata_only for x in ins[:barrier]):
        out.append(
            finding(
                "history.effect-mismatch",
                "info",
                "config (not checkable)",
                f"the config's {', '.join(_safe(u) for u in unchecked)} cannot be held to the history: history[{barrier}] "
                f"({ins[barrier].kind.lower()}, {ins[barrier].builder}) may have set them with no step of its own",
                image=img.index,
                history=barrier,
                evidence={"key": "unchecked", "keys": unchecked},
            )
        )
    return out


def _compare(rp: _Replay, cfg: dict, *, buildah: bool, buildkit: bool) -> tuple[list[_Mismatch], list[str]]:
    s = rp.s
    out: list[_Mismatch] = []
    unchecked: list[str] = []

    def miss(key, name, expected, actual, slot_or_step, severity, why):
        step = slot_or_step.step if isinstance(slot_or_step, Slot) else slot_or_step
        said = (
            slot_or_step.said
            if isinstance(slot_or_step, Slot)
            else (rp.img.history[step].created_by or "" if step is not None and step >= 0 else "")
        )
        out.append(_Mismatch(key, name, expected, actual, step, said, severity, why))

    # Scalars
    actuals: dict[str, Any] = {
        "Entrypoint": cw.argv(cfg.get("Entrypoint")),
        "Cmd": cw.argv(cfg.get("Cmd")),
        "User": cfg.get("User") if isinstance(cfg.get("User"), str) else "",
        "WorkingDir": cw.norm_path(cfg["WorkingDir"]) if isinstance(cfg.get("WorkingDir"), str) else "",
        "StopSignal": cfg.get("StopSignal") if isinstance(cfg.get("StopSignal"), str) else "",
        "Healthcheck": cw.health(cfg.get("Healthcheck")),
        "Shell": cw.argv(cfg.get("Shell")),
    }
    empty = {
        "Entrypoint": None,
        "Cmd": None,
        "User": "",
        "WorkingDir": "",
        "StopSignal": "",
        "Healthcheck": None,
        "Shell": None,
    }
    for key in SCALARS:
        actual = actuals[key]
        slot = s.scalars.get(key)
        if slot is None:
            defaults = [empty[key]] + (["/"] if key == "WorkingDir" else [])
            if actual in defaults or (key == "Healthcheck" and actual and actual.get("Test") in (None, [], ["NONE"])):
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
            ok = any(isinstance(a, dict) and cw.health_equal(a, actual) for a in slot.alts)
        elif key == "WorkingDir":
            ok = any(_equal(a, actual) or (a in ("", "/") and actual in ("", "/")) for a in slot.alts)
        else:
            ok = any(_equal(a, actual) for a in slot.alts)
        if not ok:
            expected = slot.alts[0] if len(slot.alts) == 1 else slot.alts
            miss(
                key,
                None,
                expected,
                actual,
                slot,
                _severity(key, None, slot.alts[0], actual),
                "differs from what the last step that sets it says",
            )

    # Env
    env_actual, dups = cw.env_map(cfg.get("Env"))
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
            miss(
                "Env",
                name,
                slot.alts[0],
                actual,
                slot,
                _severity("Env", name, slot.alts[0], actual),
                "differs from what the last step that sets it says"
                if name not in dups
                else "is listed twice with different values",
            )

    # Labels
    for name in sorted(set(rp.labels_actual) | set(s.labels)):
        actual = rp.labels_actual.get(name)
        slot = s.labels.get(name)
        if (
            slot is None
            and name == "io.buildah.version"
            and buildah
            and re.fullmatch(r"[0-9][0-9A-Za-z.+~-]{0,40}", actual or "")
        ):
            continue  # buildah's identity label, set at commit
        if slot is None:
            if s.unknown:
                if not _inherited(s, f"Labels {name}", actual):
                    unchecked.append(f"Labels {name}")
                continue
            sev = "low" if buildkit else "high"  # BuildKit's --label leaves no history entry
            miss(
                "Labels",
                name,
                None,
                actual,
                None,
                sev,
                "no history step sets it" + (" (BuildKit applies --label without a history entry)" if buildkit else ""),
            )
        elif not any(_equal(a, actual) for a in slot.alts):
            sev = "low" if buildkit else "high"
            miss(
                "Labels",
                name,
                slot.alts[0],
                actual,
                slot,
                sev,
                "differs from what the last step that sets it says"
                + (" (BuildKit's --label overrides LABEL without a history entry)" if buildkit else ""),
            )

    # ExposedPorts and Volumes
    ports = cfg.get("ExposedPorts")
    actual_ports: set[str] = set()
    if isinstance(ports, dict):
        for p in ports:
            if isinstance(p, str):
                actual_ports.update(cw.port_keys(p))
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


def _sets(miss, unchecked, key, actual: set[str], expected: dict[str, int], patterns, unknown: bool, s: _State) -> None:
    for item in sorted(actual - set(expected)):
        hit = next((step for pat, step in patterns if cw.matches(pat, item)), None)
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
        return (
            "critical"
            if isinstance(actual, str)
            and cw.is_root(actual)
            and not (isinstance(expected, str) and cw.is_root(expected) and WILD not in expected)
            else "high"
        )
    if key == "Env" and name is not None:
        if name in LOADER_VARS and actual is not None:
            return "critical"
        if name == "PATH" and isinstance(actual, str):
            return (
                "critical" if _path_shadows(expected if isinstance(expected, str) else DEFAULT_PATH, actual) else "high"
            )
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
        detail = (
            f"the config's OnBuild holds the trigger {_show(m.name)}, which every build FROM this image "
            "runs, but no ONBUILD step records it"
        )
    elif m.key in ("ExposedPorts", "Volumes"):
        what = f"{m.key} {name}"
        if m.actual is None:
            detail = (
                f"history[{m.step}] ({_show(m.said)}) sets {m.key} entry {_show(m.name)}, but the config "
                "does not hold it"
            )
        else:
            detail = f"the config's {m.key} holds {_show(m.name)}, but no history step sets it"
    elif m.expected is None and m.step is None:
        detail = f"the config's {what} is {_show(m.actual)}, but no history step sets it"
    else:
        detail = (
            f"the config's {what} is {_show(m.actual)}, but history[{m.step}] ({_show(m.said)}) sets "
            f"{_show(m.expected)}"
        )
    if m.severity == "critical":
        detail += {
            "User": ": the container runs as root",
            "Env": ": it changes what the container's programs load or which program a name runs",
        }.get(m.key, ": it changes what the container runs")
    evidence = {"key": m.key, "expected": _show(m.expected), "actual": _show(m.actual), "step": m.step, "reason": m.why}
    if m.name is not None:
        evidence["name"] = m.name
    return finding(
        "history.effect-mismatch",
        m.severity,
        f"config {what}"[:200],
        detail,
        image=img.index,
        history=m.step if m.step is not None and m.step >= 0 else None,
        evidence=evidence,
    )
