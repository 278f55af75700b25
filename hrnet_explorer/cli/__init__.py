"""The ``hrnet-explorer`` command: a thin caller of the core API.

One module per command (or family of commands), each with its arguments and the function that runs it:
:mod:`.describe` (variants, predict, trace), :mod:`.explain` (and :mod:`.score` for ``--score``),
:mod:`.analyze`, :mod:`.report`, :mod:`.segment` (dense models), :mod:`.lab` (the lab's training and
scoring); ``app`` from :mod:`hrnet_explorer.app`. What they share is in :mod:`.common`.

A user mistake (:class:`~hrnet_explorer.errors.UserError`: unknown variant, bad image, missing checkpoint)
prints one line to stderr and exits 2. Anything else is a bug: its traceback is printed, and the exit is 1.
"""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Sequence

from ..errors import UserError
from . import analyze, describe, explain, lab, microscope, report, segment
from .common import HelpFormatter, Parser

__all__ = ["build_parser", "main"]


def build_parser() -> Parser:
    from .. import __version__
    from ..app import add_app_command

    parser = Parser(prog="hrnet-explorer", description="See how an HRNet thinks.")
    parser.add_argument("--version", action="version", version=f"hrnet-explorer {__version__}")
    with_defaults = functools.partial(Parser, formatter_class=HelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=with_defaults)
    describe.add_commands(sub)
    explain.add_command(sub)
    analyze.add_command(sub)
    report.add_command(sub)
    segment.add_command(sub)
    microscope.add_command(sub)
    lab.add_commands(sub)
    add_app_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); → the exit status."""
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except UserError as exc:
        print(f"hrnet-explorer: error: {exc}", file=sys.stderr)
        return 2
    except Exception:  # not the user's mistake: show where it happened
        traceback.print_exc()
        print(
            "hrnet-explorer: internal error (a bug, not a mistake of yours): please report the traceback above.",
            file=sys.stderr,
        )
        return 1
    return 0
