"""Coverage-guided fuzzing with atheris (libFuzzer), when it is installed.

    pip install atheris
    python tests/fuzz/atheris_fuzz.py -atheris_runs=20000 [CORPUS_DIR]
    python tests/fuzz/atheris_fuzz.py -max_total_time=1200 CORPUS_DIR

The input bytes are the archive; `--seed-corpus DIR` first writes 200 mutants of
the structure-aware mutator (tests/fuzz/mutate.py) into DIR so libFuzzer starts
from archives that reach the deep stages. Each input is analyzed in-process and
rendered as JSON, HTML and text; anything escaping but InputError (the one-line
error path of the CLI) is a crash, and so is raw control text in the terminal
summary or the HTML. Memory and time limits are libFuzzer's (-rss_limit_mb=300,
-timeout=60).
"""

from __future__ import annotations

import os
import random
import re
import sys
import tempfile
from pathlib import Path

import atheris

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent.parent))

with atheris.instrument_imports(include=["forensics"]):
    from forensics.archive.scan import InputError
    from forensics.pipeline import analyze
    from forensics.render.html import render_html
    from forensics.render.text import render_text
    from forensics.serialize import to_json

RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_PATH = Path(tempfile.mkdtemp(prefix="atheris-")) / "input.tar"


def one_input(data: bytes) -> None:
    _PATH.write_bytes(data)
    try:
        report = analyze(str(_PATH), command=[])
    except InputError:
        return
    to_json(report).encode("utf-8")
    html = render_html(report)
    html.encode("utf-8")
    text = render_text(report)
    if RAW.search(text.replace("\n", "")) or RAW.search(html):
        raise AssertionError("raw control or bidi character in the output")


def main() -> None:
    args = sys.argv[:]
    if "--seed-corpus" in args:
        i = args.index("--seed-corpus")
        corpus = Path(args[i + 1])
        del args[i : i + 2]
        from mutate import make_case

        corpus.mkdir(parents=True, exist_ok=True)
        rng = random.Random(9)
        for n in range(200):
            (corpus / f"seed-{n}.tar").write_bytes(make_case(random.Random(rng.getrandbits(32)))[1])
        args.append(str(corpus))
    os.environ.setdefault("FORENSICS_FUZZ", "1")
    atheris.Setup(args + ["-rss_limit_mb=300", "-timeout=60"], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
