"""The text layer of a PDF, glyph by glyph with its box on the page: enough to check what
Chromium printed (which text is on which page, where, and whether two glyphs overlap).

Standard library only, for the PDFs Chromium's Skia backend writes: uncompressed object
table, FlateDecode content streams, Type0/Identity-H (CIDFontType2 with /W) and Type3
fonts with ToUnicode CMaps, text shown with Tj/TJ, positioned with Tm/Td/TD/T* and the
CTM (q, Q, cm), form XObjects. Not a general PDF reader: object streams, encryption,
other filters and fonts are refused with an error, never guessed.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

_OBJ = re.compile(rb"(\d+)\s+(\d+)\s+obj\b")
_TOKEN = re.compile(
    rb"\s*(?:(%[^\r\n]*)|(/[^\s/\[\]()<>{}%]*)|(<<|>>|\[|\])|(<[0-9A-Fa-f\s]*>)|(\()|"
    rb"([+-]?(?:\d+\.?\d*|\.\d+))(?![^\s/\[\]()<>{}%])|([^\s/\[\]()<>{}%]+))"
)


class PDFError(ValueError):
    pass


@dataclass(frozen=True)
class Ref:
    num: int


@dataclass(frozen=True)
class Name:
    name: str


@dataclass(frozen=True)
class Op:
    op: str


@dataclass(frozen=True)
class Glyph:
    page: int  # 1-based
    char: str
    x0: float  # points, origin bottom left
    y0: float
    x1: float
    y1: float
    size: float  # font size on the page, points
    seq: int = 0  # drawing order in the document


def _literal(data: bytes, i: int) -> tuple[bytes, int]:
    """A (literal string) starting after its '(' at i: balanced parentheses, escapes."""
    out = bytearray()
    depth = 1
    esc = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}
    while i < len(data):
        c = data[i : i + 1]
        if c == b"\\":
            n = data[i + 1 : i + 2]
            if n in esc:
                out += esc[n]
                i += 2
            elif n.isdigit():
                m = re.match(rb"[0-7]{1,3}", data[i + 1 : i + 4])
                out.append(int(m.group(), 8) & 0xFF)
                i += 1 + len(m.group())
            elif n in (b"\r", b"\n"):
                i += 2
            else:
                out += n
                i += 2
            continue
        if c == b"(":
            depth += 1
        elif c == b")":
            depth -= 1
            if depth == 0:
                return bytes(out), i + 1
        out += c
        i += 1
    raise PDFError("unterminated string")


def tokens(data: bytes, i: int = 0):
    """(value, end) for each token from i: numbers, Name, bytes (strings), Op, '<<', '>>', '[', ']'."""
    while True:
        m = _TOKEN.match(data, i)
        if m is None or m.end() == i:
            return
        i = m.end()
        comment, name, delim, hexstr, lparen, number, word = m.groups()
        if comment is not None:
            continue
        if name is not None:
            yield Name(name[1:].decode("latin-1")), i
        elif delim is not None:
            yield delim.decode(), i
        elif hexstr is not None:
            h = re.sub(rb"\s", b"", hexstr[1:-1])
            yield bytes.fromhex((h + b"0" * (len(h) % 2)).decode()), i
        elif lparen is not None:
            s, i = _literal(data, i)
            yield s, i
        elif number is not None:
            yield (float(number) if b"." in number else int(number)), i
        else:
            yield Op(word.decode("latin-1")), i


def parse_value(data: bytes, i: int = 0):
    """One PDF object (dict, array, number, name, string, reference) from i: (value, end)."""
    stack: list[list] = [[]]
    for tok, end in tokens(data, i):
        if tok in ("<<", "["):
            stack.append([tok])
            continue
        if tok in (">>", "]"):
            items = stack.pop()
            opener, items = items[0], items[1:]
            value = dict(zip(items[0::2], items[1::2])) if opener == "<<" else items
            if opener == "<<":
                value = {k.name: v for k, v in value.items()}
        elif isinstance(tok, Op) and tok.op == "R":
            cur = stack[-1]
            gen, num = cur.pop(), cur.pop()
            del gen
            value = Ref(num)
        elif isinstance(tok, Op) and tok.op not in ("true", "false", "null"):
            if len(stack) == 1 and stack[0]:
                return stack[0][0], i
            raise PDFError(f"unexpected {tok.op!r}")
        else:
            value = {"true": True, "false": False, "null": None}[tok.op] if isinstance(tok, Op) else tok
        stack[-1].append(value)
        i = end
        if len(stack) == 1 and len(stack[0]) == 1:
            # a number may be the start of "N G R": look ahead before returning it
            if isinstance(value, int):
                la = list(_take(tokens(data, i), 2))
                if len(la) == 2 and isinstance(la[0][0], int) and la[1][0] == Op("R"):
                    continue
            return value, i
    if len(stack) == 1 and stack[0]:
        return stack[0][0], i
    raise PDFError("truncated object")


def _take(it, n):
    for _ in range(n):
        try:
            yield next(it)
        except StopIteration:
            return


class PDF:
    def __init__(self, data: bytes):
        if not data.startswith(b"%PDF-"):
            raise PDFError("not a PDF")
        if b"/ObjStm" in data or b"/Encrypt" in data:
            raise PDFError("object streams and encryption are not supported")
        self.data = data
        self.offsets: dict[int, int] = {}
        for m in _OBJ.finditer(data):
            self.offsets.setdefault(int(m.group(1)), m.end())
        self._cache: dict[int, object] = {}

    def get(self, v):
        while isinstance(v, Ref):
            if v.num not in self._cache:
                self._cache[v.num] = self._load(v.num)
            v = self._cache[v.num]
        return v

    def _load(self, num: int):
        at = self.offsets.get(num)
        if at is None:
            raise PDFError(f"object {num} not found")
        value, end = parse_value(self.data, at)
        m = re.compile(rb"\s*stream\r?\n").match(self.data, end)
        if isinstance(value, dict) and m:
            length = self.get(value["Length"])
            raw = self.data[m.end() : m.end() + length]
            filt = value.get("Filter")
            if filt == Name("FlateDecode"):
                raw = zlib.decompress(raw)
            elif filt is not None:
                raise PDFError(f"filter {filt} not supported")
            return {**value, "_stream": raw}
        return value

    def pages(self) -> list[dict]:
        trailer_root = re.search(rb"/Root\s+(\d+)\s+\d+\s+R", self.data)
        if trailer_root is None:
            raise PDFError("no /Root")
        out: list[dict] = []

        def walk(node, inherited):
            node = self.get(node)
            res = node.get("Resources", inherited)
            if node.get("Type") == Name("Pages"):
                for kid in self.get(node["Kids"]):
                    walk(kid, res)
            else:
                out.append({**node, "Resources": res})

        walk(self.get(Ref(int(trailer_root.group(1))))["Pages"], None)
        return out


class _Font:
    def __init__(self, pdf: PDF, font: dict):
        self.two_byte = font.get("Subtype") == Name("Type0")
        self.scale = 0.001
        self.widths: dict[int, float] = {}
        self.default = 0.0
        if self.two_byte:
            desc = pdf.get(pdf.get(font["DescendantFonts"])[0])
            self.default = float(desc.get("DW", 1000))
            w = pdf.get(desc.get("W", []))
            i = 0
            while i < len(w):
                first, nxt = w[i], pdf.get(w[i + 1])
                if isinstance(nxt, list):
                    for k, width in enumerate(nxt):
                        self.widths[first + k] = float(width)
                    i += 2
                else:
                    for c in range(first, nxt + 1):
                        self.widths[c] = float(w[i + 2])
                    i += 3
        elif font.get("Subtype") in (Name("Type3"), Name("TrueType"), Name("Type1")):
            first = font.get("FirstChar", 0)
            for k, width in enumerate(pdf.get(font.get("Widths", []))):
                self.widths[first + k] = float(width)
            if font.get("Subtype") == Name("Type3"):
                self.scale = abs(float(pdf.get(font["FontMatrix"])[0]))
        else:
            raise PDFError(f"font subtype {font.get('Subtype')} not supported")
        self.unicode = _cmap(pdf.get(font["ToUnicode"])["_stream"]) if "ToUnicode" in font else {}

    def codes(self, s: bytes) -> list[int]:
        if self.two_byte:
            return [int.from_bytes(s[i : i + 2], "big") for i in range(0, len(s) - 1, 2)]
        return list(s)

    def width(self, code: int) -> float:
        return self.widths.get(code, self.default) * self.scale


def _cmap(data: bytes) -> dict[int, str]:
    out: dict[int, str] = {}

    def text(h: bytes) -> str:
        return bytes.fromhex(h.decode()).decode("utf-16-be", "replace")

    for block in re.findall(rb"beginbfchar(.*?)endbfchar", data, re.S):
        for src, dst in re.findall(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]*)>", block):
            out[int(src, 16)] = text(dst)
    for block in re.findall(rb"beginbfrange(.*?)endbfrange", data, re.S):
        for lo, hi, dst in re.findall(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>\s*(<[0-9A-Fa-f]*>|\[[^\]]*\])", block):
            lo_i, hi_i = int(lo, 16), int(hi, 16)
            if dst.startswith(b"["):
                for k, d in enumerate(re.findall(rb"<([0-9A-Fa-f]*)>", dst)):
                    out[lo_i + k] = text(d)
            else:
                base = bytes.fromhex(dst[1:-1].decode())
                start = int.from_bytes(base, "big")
                for k in range(hi_i - lo_i + 1):
                    out[lo_i + k] = (start + k).to_bytes(len(base), "big").decode("utf-16-be", "replace")
    return out


def _mul(a, b):
    """Matrix product a x b of PDF matrices [a b c d e f]."""
    return [
        a[0] * b[0] + a[1] * b[2],
        a[0] * b[1] + a[1] * b[3],
        a[2] * b[0] + a[3] * b[2],
        a[2] * b[1] + a[3] * b[3],
        a[4] * b[0] + a[5] * b[2] + b[4],
        a[4] * b[1] + a[5] * b[3] + b[5],
    ]


def _apply(m, x, y):
    return m[0] * x + m[2] * y + m[4], m[1] * x + m[3] * y + m[5]


def glyphs(data: bytes) -> list[Glyph]:
    """Every glyph Chromium drew, page by page, with its box (the em square's body: from
    the baseline up to 0.7 of the font size, the advance width across)."""
    pdf = PDF(data)
    out: list[Glyph] = []
    for n, page in enumerate(pdf.pages(), start=1):
        contents = pdf.get(page.get("Contents"))
        streams = contents if isinstance(contents, list) else [contents]
        content = b"\n".join(pdf.get(s)["_stream"] for s in streams if s is not None)
        _run(pdf, content, pdf.get(page.get("Resources")) or {}, [1, 0, 0, 1, 0, 0], n, out, depth=0)
    return out


def _run(pdf: PDF, content: bytes, resources: dict, ctm: list, page: int, out: list[Glyph], depth: int) -> None:
    if depth > 8:
        raise PDFError("form XObjects nested too deep")
    fonts = pdf.get(resources.get("Font", {})) or {}
    xobjects = pdf.get(resources.get("XObject", {})) or {}
    loaded: dict[str, _Font] = {}
    stack: list[list] = []
    operands: list = []
    tm = tlm = [1, 0, 0, 1, 0, 0]
    font: _Font | None = None
    size = 0.0
    char_space = word_space = rise = leading = 0.0
    hscale = 1.0
    arr: list | None = None

    def show(s: bytes) -> None:
        nonlocal tm
        if font is None:
            raise PDFError("text shown before Tf")
        for code in font.codes(s):
            w = font.width(code)
            trm = _mul([size * hscale, 0, 0, size, 0, rise], _mul(tm, ctm))
            x0, y0 = _apply(trm, 0, 0)
            x1, y1 = _apply(trm, w, 0.7)
            char = font.unicode.get(code, "\ufffd")
            out.append(Glyph(page, char, min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1), abs(trm[3]), len(out)))
            adv = (w * size + char_space + (word_space if code == 32 and not font.two_byte else 0)) * hscale
            tm = _mul([1, 0, 0, 1, adv, 0], tm)

    for tok, _ in tokens(content):
        if tok == "[":
            arr = []
            continue
        if tok == "]":
            operands.append(arr)
            arr = None
            continue
        if arr is not None:
            arr.append(tok)
            continue
        if not isinstance(tok, Op):
            operands.append(tok)
            continue
        op = tok.op
        if op == "q":
            stack.append(ctm)
        elif op == "Q":
            ctm = stack.pop() if stack else ctm
        elif op == "cm":
            ctm = _mul([float(v) for v in operands[-6:]], ctm)
        elif op == "BT":
            tm = tlm = [1, 0, 0, 1, 0, 0]
        elif op == "Tf":
            name, size = operands[-2].name, float(operands[-1])
            if name not in loaded:
                loaded[name] = _Font(pdf, pdf.get(fonts[name]))
            font = loaded[name]
        elif op == "Tm":
            tm = tlm = [float(v) for v in operands[-6:]]
        elif op in ("Td", "TD"):
            tx, ty = float(operands[-2]), float(operands[-1])
            if op == "TD":
                leading = -ty
            tm = tlm = _mul([1, 0, 0, 1, tx, ty], tlm)
        elif op == "T*":
            tm = tlm = _mul([1, 0, 0, 1, 0, -leading], tlm)
        elif op == "TL":
            leading = float(operands[-1])
        elif op == "Tc":
            char_space = float(operands[-1])
        elif op == "Tw":
            word_space = float(operands[-1])
        elif op == "Tz":
            hscale = float(operands[-1]) / 100
        elif op == "Ts":
            rise = float(operands[-1])
        elif op == "Tj":
            show(operands[-1])
        elif op in ("'", '"'):
            tm = tlm = _mul([1, 0, 0, 1, 0, -leading], tlm)
            show(operands[-1])
        elif op == "TJ":
            for item in operands[-1]:
                if isinstance(item, bytes):
                    show(item)
                else:
                    tm = _mul([1, 0, 0, 1, -float(item) / 1000 * size * hscale, 0], tm)
        elif op == "Do":
            xo = pdf.get(xobjects.get(operands[-1].name))
            if isinstance(xo, dict) and xo.get("Subtype") == Name("Form"):
                matrix = [float(v) for v in pdf.get(xo.get("Matrix", [1, 0, 0, 1, 0, 0]))]
                res = pdf.get(xo.get("Resources")) or resources
                _run(pdf, xo["_stream"], res, _mul(matrix, ctm), page, out, depth + 1)
        operands = []


def page_texts(data: bytes) -> dict[int, str]:
    """The characters of each page in drawing order (no layout), for `in` checks."""
    out: dict[int, list[str]] = {}
    for g in glyphs(data):
        out.setdefault(g.page, []).append(g.char)
    return {p: "".join(chars) for p, chars in out.items()}


def overlaps(gs: list[Glyph], min_share: float = 0.3) -> list[tuple[Glyph, Glyph]]:
    """Pairs of visible glyphs whose boxes overlap by more than `min_share` of the smaller
    box: text printed over other text. Two neighbours of one run (a kerned pair such as
    "r,") and a glyph drawn twice on the same spot (an SVG label's halo, then its fill)
    are not text over text."""
    found: list[tuple[Glyph, Glyph]] = []
    cell = 6.0
    grid: dict[tuple[int, int, int], list[Glyph]] = {}
    for g in gs:
        if g.char.isspace() or g.x1 - g.x0 < 0.5:
            continue
        area = (g.x1 - g.x0) * (g.y1 - g.y0)
        keys = {
            (g.page, cx, cy)
            for cx in range(int(g.x0 // cell), int(g.x1 // cell) + 1)
            for cy in range(int(g.y0 // cell), int(g.y1 // cell) + 1)
        }
        hit = set()
        for k in keys:
            for h in grid.get(k, ()):
                if id(h) in hit:
                    continue
                w = min(g.x1, h.x1) - max(g.x0, h.x0)
                ht = min(g.y1, h.y1) - max(g.y0, h.y0)
                if abs(g.seq - h.seq) == 1 and abs(g.y0 - h.y0) < 0.1:
                    continue  # neighbours in one run: kerning
                if g.char == h.char and abs(g.x0 - h.x0) < 0.1 and abs(g.y0 - h.y0) < 0.1:
                    continue  # the same glyph drawn twice
                if w > 0 and ht > 0:
                    other = (h.x1 - h.x0) * (h.y1 - h.y0)
                    if w * ht > min_share * min(area, other):
                        hit.add(id(h))
                        found.append((h, g))
        for k in keys:
            grid.setdefault(k, []).append(g)
    return found
