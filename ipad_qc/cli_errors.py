"""One way every command reports a fatal error: ``error: <message>`` on stderr, then its exit code.

Messages carry file names and other user-controlled text, so they always pass through
:func:`ipad_qc.names.markup` (a name holding ``[/red]`` or an escape sequence prints as data and can
never crash rich or repaint the terminal).
"""

from __future__ import annotations

import sys
from typing import NoReturn

from rich.console import Console

from ipad_qc.names import markup

#: Bad input or options (click's own code for usage errors).
EXIT_USAGE = 2

err_console = Console(stderr=True)


def print_error(message: object) -> None:
    err_console.print(f"[red]error:[/red] {markup(message)}", highlight=False, soft_wrap=True)


def fail(message: object, code: int = EXIT_USAGE) -> NoReturn:
    print_error(message)
    sys.exit(code)
