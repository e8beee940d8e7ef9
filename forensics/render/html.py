"""The self-contained HTML report: one file, no network, readable without JavaScript.

`render_html(report)` builds the view model (forensics.render.view) and renders
`reports/templates/report.html.j2` with autoescape on for every template. The
CSS and the one small script are inlined from `reports/assets/`; the page's
Content-Security-Policy forbids loading anything and allows only that script,
by its sha256 computed here at render time.
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache
from importlib import resources

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from forensics.models import Report
from forensics.render.safe import finalize_html
from forensics.render.signatures import signatures_view
from forensics.render.suppressed import suppressed_view
from forensics.render.view import Limits, build_view

CSP_TEMPLATE = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src '{script_hash}'; "
    "base-uri 'none'; form-action 'none'"
)


@lru_cache(maxsize=1)
def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("reports", "templates"),
        autoescape=True,  # every template, whatever its extension
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=finalize_html,  # controls and bidi characters of every printed value made visible
    )
    return env


@lru_cache(maxsize=4)
def asset(name: str) -> str:
    return resources.files("reports").joinpath("assets", name).read_text(encoding="utf-8")


def script_hash(script: str) -> str:
    """The CSP source expression allowing exactly this inline script."""
    return "sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")


def content_security_policy(script: str) -> str:
    return CSP_TEMPLATE.format(script_hash=script_hash(script))


def print_css(footer: str) -> str:
    """The page box of the printed report: A4, and a footer on every page (the input's sha256,
    the tool's version, the page number) in @page margin boxes, which Chromium prints.
    `footer` is made of safe characters only (forensics.render.view.print_footer); a newline
    in it starts the footer's second line."""
    if any(ch in footer for ch in '"\\<>{};'):
        raise ValueError("the print footer holds characters a stylesheet string cannot take")
    text = footer.replace("\n", "\\A ")
    return (
        "@page { size: A4; margin: 14mm 12mm 16mm;"
        f' @bottom-left {{ content: "{text}"; white-space: pre; font: 7pt {FOOTER_FONT}; color: #475569; }}'
        ' @bottom-right { content: "page " counter(page) " of " counter(pages); white-space: nowrap;'
        f" font: 7pt {FOOTER_FONT}; color: #475569; }} }}"
    )


FOOTER_FONT = '"DejaVu Sans Mono", ui-monospace, monospace'


def render_html(report: Report, *, limits: Limits | None = None) -> str:
    view = build_view(report, limits)
    script = asset("report.js")
    css = asset("report.css")
    if "</" in script or "</" in css:  # never possible for the shipped assets; guards edits
        raise ValueError("report assets must not contain '</'")
    template = _env().get_template("report.html.j2")
    return template.render(
        v=view,
        sup=suppressed_view(report),
        sig=signatures_view(
            report
        ),  # forensics.render.signatures: signatures and attestations  # forensics.render.suppressed: the findings a suppression file set apart
        csp=content_security_policy(script),
        # trusted static assets shipped in the wheel, not data from the image
        css=Markup(css),
        print_css=Markup(print_css(view["footer"])),
        script=Markup(script),
    )
