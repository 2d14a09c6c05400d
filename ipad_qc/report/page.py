"""Assemble a self-contained HTML page: template + inline CSS/JS + the data as an inert JSON block.

The page has no way to reach the network: a Content-Security-Policy allows only the page's own
script and style (by hash) and images from data URIs (plus the page's folder in folder layout).
Untrusted strings (file names, error messages) travel only inside the JSON block, with ``<``, ``>``
and ``&`` written as ``\\u003c`` etc. so no sequence in a name can close the block, and the script
renders them with ``textContent``.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from functools import cache
from importlib import resources
from typing import Any

from ipad_qc import __version__

LAYOUTS = ("auto", "single", "folder")
# A single-file page embeds every thumbnail as base64. Above this size it no longer fits a mail
# attachment (25 MB limits are common) and browsers parse it slowly, so `auto` switches to a folder.
SINGLE_FILE_LIMIT = 20 * 1024 * 1024
_PLACEHOLDER = re.compile(r"@@([A-Z]+)@@")
_JSON_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028",
                               "\u2029": "\\u2029"})


@cache
def _resource(name: str) -> str:
    return resources.files("ipad_qc.report").joinpath(name).read_text(encoding="utf-8")


def embed_json(data: Any) -> str:
    """JSON that is safe between ``<script type="application/json">`` tags whatever strings it holds."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False).translate(_JSON_ESCAPES)


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def content_security_policy(script: str, style: str, folder: bool) -> str:
    """Only this page's own script and style run; images only from data URIs (and its own folder)."""
    images = "data: 'self'" if folder else "data:"
    return (f"default-src 'none'; img-src {images}; style-src {_sha256(style)}; script-src {_sha256(script)}; "
            "base-uri 'none'; form-action 'none'")


def render_page(data: dict[str, Any], folder: bool) -> str:
    """The complete HTML of a report or comparison page (``data['kind']`` picks which)."""
    script, style = _resource("static/report.js"), _resource("static/report.css")
    values = {
        "CSP": content_security_policy(script, style, folder),
        "VERSION": __version__,
        "TITLE": html.escape(data["title"]),
        "STYLE": style,
        "SCRIPT": script,
        "DATA": embed_json(data),
    }
    return _PLACEHOLDER.sub(lambda match: values[match.group(1)], _resource("templates/page.html"))


def choose_inline(layout: str, estimated_bytes: int) -> bool:
    """Whether to embed the pictures (single file) for ``layout`` and the page's estimated weight."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose from {', '.join(LAYOUTS)}")
    return layout == "single" or (layout == "auto" and estimated_bytes <= SINGLE_FILE_LIMIT)
