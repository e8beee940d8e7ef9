"""The finding registry: the codes are the shared vocabulary, and each `finding(...)` call in the
source raises a code of the vocabulary that its module declares (`RAISES`).

shared/findings.md lists codes that open issues introduce before any module raises them, so
a code may be in the registry and raised by no module yet; never the other way round.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from forensics import findings as F
from forensics.findings import CODES, EXPLANATIONS, RAISED_BY, closest_codes, declarations, explain_code, finding

FINDINGS_MD = Path(__file__).resolve().parents[2] / "shared" / "findings.md"
SRC = Path(__file__).resolve().parents[1] / "forensics"


def _vocabulary() -> list[str]:
    if not FINDINGS_MD.exists():
        pytest.skip(f"{FINDINGS_MD} not found")
    codes = re.findall(r"^\| `([a-z]+\.[a-z-]+)` \|", FINDINGS_MD.read_text(), re.M)
    assert codes, f"no codes parsed from {FINDINGS_MD}"
    return codes


def test_the_registry_is_the_shared_vocabulary():
    assert sorted(CODES) == sorted(_vocabulary()), "forensics.findings.Code must list shared/findings.md exactly"
    assert list(EXPLANATIONS) == list(CODES), "one explanation per code, in the vocabulary's order"


def _finding_calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if (isinstance(f, ast.Name) and f.id == "finding") or (
                isinstance(f, ast.Attribute) and f.attr == "finding"
            ):
                yield node


def _modules():
    for path in sorted(SRC.rglob("*.py")):
        if path.name == "findings.py" and path.parent == SRC:
            continue
        rel = path.relative_to(SRC.parent).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        yield name, path, ast.parse(path.read_text(), str(path))


def test_every_finding_call_raises_a_declared_code_of_the_vocabulary():
    declared = declarations()
    calls = 0
    for name, path, tree in _modules():
        literals = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value in CODES}
        for call in _finding_calls(tree):
            calls += 1
            where = f"{path.relative_to(SRC.parent)}:{call.lineno}"
            assert name in declared, f"{where} calls finding() but {name} declares no RAISES"
            assert call.args or any(k.arg == "code" for k in call.keywords), f"{where}: finding() without a code"
            arg = call.args[0] if call.args else next(k.value for k in call.keywords if k.arg == "code")
            if isinstance(arg, ast.Constant):
                assert arg.value in CODES, f"{where}: {arg.value!r} is not in the vocabulary"
                assert arg.value in declared[name], f"{where}: {arg.value} is not in {name}.RAISES"
            else:
                # A code chosen at run time (accounts.py picks one of two): every code the module
                # names must then be declared.
                assert literals <= set(declared[name]), f"{where}: {sorted(literals - set(declared[name]))} undeclared"
        if name in declared:
            stale = set(declared[name]) - literals
            assert not stale, f"{name}.RAISES declares {sorted(stale)} but never names it"
    assert calls > 50, "the walk found too few finding() calls: it is stale"


def test_declarations_are_codes_of_the_vocabulary():
    for module, codes in declarations().items():
        assert codes and set(codes) <= set(CODES), module
    assert set(RAISED_BY) <= set(CODES)
    # What the scan raises today: the registry must know who raises each of these.
    for code in ("blob.digest-mismatch", "layer.diffid-mismatch", "history.unexplained-change", "file.persistence"):
        assert RAISED_BY[code], code
    assert "forensics.verify.layers" in RAISED_BY["layer.diffid-mismatch"]


def test_a_malformed_declaration_is_refused():
    with pytest.raises(TypeError):
        F._declared(ast.parse('RAISES = ["blob.missing"]'))
    with pytest.raises(ValueError):
        F._declared(ast.parse("RAISES = (CODE,)"))
    assert F._declared(ast.parse('RAISES: tuple[Code, ...] = ("blob.missing",)')) == ("blob.missing",)


def test_unknown_code_is_refused():
    with pytest.raises(ValueError):
        finding("blob.made-up", "high", "x", "y")  # type: ignore[arg-type]


def test_explain_code_gives_every_part_for_every_code():
    for code in CODES:
        e = explain_code(code)
        assert e["code"] == code and e["meaning"] == EXPLANATIONS[code]
        for part in ("why", "attack"):
            assert len(e[part]) > 40, (code, part)
        assert e["confirm"] and all(s["say"] and s["run"] for s in e["confirm"]), code
        assert e["false_positives"], code
        assert e["raised_by"] == RAISED_BY.get(code, "").split(", ") if code in RAISED_BY else e["raised_by"] == []
    with pytest.raises(KeyError):
        explain_code("blob.made-up")


def test_closest_codes():
    assert closest_codes("layer.diffid")[0] == "layer.diffid-mismatch"
    assert closest_codes("blob.digest-mismatsh")[0] == "blob.digest-mismatch"
    assert closest_codes("BLOB.MISSING")[0] == "blob.missing"
    assert closest_codes("zzzz") == []
