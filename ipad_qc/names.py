"""File names and messages as data: storable in SQLite, printable on a terminal, inert in rich markup.

File names come from users, cameras and other people's tools, and they are bytes, not text: on POSIX
Python hands the bytes that are not UTF-8 over as lone surrogates (``surrogateescape``), which SQLite
and terminals refuse; a name may hold escape sequences that repaint a terminal, or ``[/red]``, which
rich would read as markup. Every name that reaches the results database goes through
:func:`storable`, and every user-controlled string that reaches the console through :func:`printable`
(or :func:`markup` where rich parses markup), so a name is always shown exactly as data.
"""

from __future__ import annotations

import re

from rich.markup import escape

_SURROGATES = re.compile("[\ud800-\udfff]")
_ESCAPED_BYTE = re.compile(r"\\x([89a-f][0-9a-f])")
# C0 and C1 controls, DEL, and the bidirectional overrides that can make a name read backwards.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _escape_surrogate(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def storable(text: str) -> str:
    """``text`` as valid UTF-8: each byte that was not UTF-8 in a file name becomes ``\\xNN``.

    Names that are valid UTF-8, the overwhelming majority, come back unchanged, so a run folder's row
    keys stay the names users see. :func:`undecodable_name` reverses the mapping to find the file.
    """
    return _SURROGATES.sub(_escape_surrogate, text)


def undecodable_name(key: str) -> str | None:
    """The file-system name a :func:`storable` key with ``\\xNN`` escapes stands for, or ``None``."""
    if not _ESCAPED_BYTE.search(key):
        return None
    return _ESCAPED_BYTE.sub(lambda match: chr(0xDC00 + int(match.group(1), 16)), key)


def printable(text: object) -> str:
    """``str(text)`` safe for one terminal line: undecodable bytes, control characters (escape
    sequences, newlines) and bidirectional overrides are written as ``\\xNN`` / ``\\uNNNN``."""
    value = storable(str(text))
    return _UNPRINTABLE.sub(lambda match: f"\\x{ord(match.group()):02x}" if ord(match.group()) < 0x100
                            else f"\\u{ord(match.group()):04x}", value)


def markup(text: object) -> str:
    """:func:`printable` text escaped for rich markup, for messages that mix it with ``[red]`` tags."""
    return escape(printable(text))
