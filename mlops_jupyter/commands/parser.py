"""The one grammar of ``%mlops`` and ``mlops``, assembled from the area modules.

Each module in ``COMMANDS`` adds its commands with ``add_parser(subparsers)``, and each command
declares what runs it and what it needs with ``set_defaults``:

- ``func``: the handler, ``func(ns, ctx) -> result`` (a core object for the face to show, or None);
- ``kernel_only``: the command as typed in a notebook (``track``, ``model register``) when it works
  only in a kernel (the terminal refuses it, naming it so);
- ``terminal_only``: True when it works only in a terminal (the magic refuses it).
"""

from __future__ import annotations

import argparse
import functools
import shutil
from typing import Any

from . import admin, autolog, data, demo, evaluate, explain, help, integrations, job, model, monitor, runs, serve, track, tune
from .context import Context
from .errors import CommandError, HelpRequested

COMMANDS = [track, autolog, runs, data, model, explain, evaluate, serve, job, tune, monitor, integrations, admin, help, demo]
_VALUE_FLAGS = {"--sort", "--where", "--step"}


class CommandParser(argparse.ArgumentParser):
    """argparse that raises instead of printing and exiting (subparsers are of this class too)."""

    def error(self, message: str):
        raise CommandError(f"{self.prog}: {message}", self.format_usage())

    def print_help(self, file=None):
        topic = self.prog.split()[1:]
        raise HelpRequested(help.help_text(topic), topic)

    def _check_value(self, action, value):
        # argparse would answer a typo with every choice ("choose from 'init', 'track', ..."):
        # an unknown (sub)command gets the likely word instead, other choices a hint.
        if action.choices is None or value in action.choices:
            return
        choices = [str(c) for c in action.choices]
        if isinstance(action, argparse._SubParsersAction):
            raise help.unknown_command(self.prog, str(value), choices)
        import difflib

        close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.6)
        hint = f"did you mean `{close[0]}`?" if close else f"choose from {', '.join(choices)}"
        raise argparse.ArgumentError(action, f"invalid choice: {value!r}; {hint}")

    def exit(self, status: int = 0, message: str | None = None):
        if status:
            raise CommandError(message or f"{self.prog}: error", self.format_usage())
        raise HelpRequested(message or "")


_PARSER: list[CommandParser] = []


def build_parser() -> CommandParser:
    """The grammar of every command (built once per process)."""
    if _PARSER:
        return _PARSER[0]
    # argparse passes each of its strings through gettext, which looks on disk for a catalogue
    # every time: some 200 look-ups here, a third of `mlops --help`. The same text in the same
    # process gets the same translation, so remember it while the grammar is built. Likewise each
    # add_argument makes a help formatter (to check the metavar), which asks for the terminal's
    # size: some 240 system calls for the one answer, asked once here instead.
    saved, saved_size = argparse._, shutil.get_terminal_size
    size = saved_size()
    argparse._ = functools.lru_cache(maxsize=None)(saved)
    shutil.get_terminal_size = lambda fallback=(80, 24): size
    try:
        top = CommandParser(prog="mlops", description="Jupyter-native MLOps. The same commands work as "
                                                      "%mlops in a notebook and mlops in a terminal.")
        top.set_defaults(func=None, kernel_only=None, terminal_only=False)
        subparsers = top.add_subparsers(dest="command", metavar="COMMAND", parser_class=CommandParser)
        for area in COMMANDS:
            area.add_parser(subparsers)
    finally:
        argparse._, shutil.get_terminal_size = saved, saved_size
    _PARSER.append(top)
    return top


def parse(argv: list[str]) -> argparse.Namespace:
    """The command *argv* (words after ``mlops``/``%mlops``) names, with its handler in ``func``.

    Raises:
        CommandError: bad input (with the usage and, for a typo, the likely word).
        HelpRequested: ``--help``/``-h``.
    """
    argv = list(argv)
    # `--sort -metrics.acc`: a value that starts with a minus is still the flag's value.
    i = 0
    while i < len(argv) - 1:
        if argv[i] in _VALUE_FLAGS and argv[i + 1].startswith("-") and argv[i + 1] not in ("-h", "--help"):
            argv[i:i + 2] = [f"{argv[i]}={argv[i + 1]}"]
        i += 1
    # `runs` alone, or with options only, lists; `runs lss` is a typo, not options for ls.
    if argv and argv[0] == "runs" and (len(argv) == 1 or (argv[1].startswith("-") and argv[1] not in ("-h", "--help"))):
        argv.insert(1, "ls")
    if not argv:  # `%mlops` alone: the short overview, without building the parser
        return argparse.Namespace(command="help", topic=None, func=help.show_help, kernel_only=None,
                                  terminal_only=False)
    ns = build_parser().parse_args(argv)
    if ns.command is None:
        ns.command, ns.topic, ns.func = "help", [], help.show_help
    return ns


def run_command(ns: argparse.Namespace, ctx: Context) -> Any:
    """Run a parsed command; returns a core object for the face to show (or None)."""
    return ns.func(ns, ctx)
