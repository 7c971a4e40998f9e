"""Help in the words of the face that asks: ``%mlops`` alone (where to start), ``help`` (every
command by area), ``help COMMAND`` (its subcommands and options), a did-you-mean for typos; and
the ``help`` and ``version`` commands."""

from __future__ import annotations

import argparse

from .errors import CommandError

# `%mlops` alone: what a newcomer needs first, by what it is for. A row: (what for, the
# notebook form, the terminal form or None when it needs a kernel, what it does).
OVERVIEW = (
    ("Track", "track start NAME", None, "start a run (%%mlops track NAME: the cell is the run)"),
    ("", "log loss=0.3 acc=0.9", None, "log metrics (starts a run if none is active)"),
    ("", "track stop", None, "end the run"),
    ("Runs", "runs", "runs", "every run as a table: --where, --sort, --last"),
    ("", "show RUN", "show RUN", "one run: params, metrics, charts, cells"),
    ("", "compare RUN RUN...", "compare RUN RUN...", "params side by side, metric curves overlaid"),
    ("Version", "data add df --name NAME", "data add PATH --name NAME", "a file, folder or DataFrame"),
    ("", "model register clf --name NAME", None, "a trained model"),
    ("Automate", "promote --name NAME", "promote NOTEBOOK --name NAME", "the notebook as a retraining job"),
)
# `%mlops help`: every command, by area; administration apart. A command missing here is
# listed under "Other" (and a test fails).
HELP_GROUPS = (
    ("Track experiments", ("track", "autolog", "log", "param", "tag", "artifact", "watch")),
    ("Explore runs", ("runs", "show", "compare", "lineage")),
    ("Data", ("data",)),
    ("Models", ("model", "explain", "evaluate", "serve")),
    ("Jobs", ("promote", "job", "retrain")),
    ("Tuning", ("tune", "study")),
    ("Monitoring", ("drift", "monitor")),
    ("Other tools", ("wandb", "export", "import")),
    ("This project", ("init", "demo", "help", "version")),
    ("Administration (shared stores, keys, upkeep)", ("access", "key", "migrate", "gc", "fsck", "audit")),
)
# Forms a command has only as a cell magic, shown with its help.
CELL_FORMS = {"track": ("track start", "the cell is one run: finished when the cell ends, failed if it raises, "
                                       "killed on interrupt; the cell's last expression is its value")}
# How help words each face's commands: the prefix they are typed with, and whether that is in a
# notebook (a fixed width; a terminal's follows its window). Another face name is worded as "cli".
_WORDING = {"magic": ("%mlops ", True), "cli": ("mlops ", False)}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """``help [COMMAND...]`` and ``version``."""
    p = subparsers.add_parser("help", help="show help for a command")
    p.add_argument("topic", nargs="*")
    p.set_defaults(func=show_help)

    p = subparsers.add_parser("version", help="print the version")
    p.set_defaults(func=_version)


def show_help(ns, ctx):
    """The ``help`` command: the overview (*topic* None: the command line was empty) or a topic."""
    face = "magic" if ctx.has_kernel else "cli"  # in a kernel, commands are typed as %mlops
    ctx.out(overview(face) if ns.topic is None else help_text(ns.topic, face))


def _version(ns, ctx):
    from .._version import __version__

    ctx.out(f"mlops-jupyter {__version__}")


def unknown_command(prog: str, word: str, choices: list[str]) -> CommandError:
    """``mlops: unknown command 'rnus'; did you mean `runs`?``: one line, no list of 30 commands."""
    import difflib

    path = prog.split()[1:]  # prog is "mlops" or "mlops runs"
    what = "subcommand" if path else "command"
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if close:
        hint = f"did you mean `{' '.join([*path, close[0]])}`?"
    elif path:
        hint = f"choose from {', '.join(choices)}"
    else:
        hint = "`mlops help` lists the commands"
    return CommandError(f"{prog}: unknown {what} {word!r}; {hint}")


def _wording(face: str) -> tuple[str, bool]:
    return _WORDING.get(face, _WORDING["cli"])


def _width(in_notebook: bool) -> int:
    if in_notebook:
        return 100
    import shutil

    return max(60, min(120, shutil.get_terminal_size((100, 24)).columns))


def _wrap(first: str, text: str, indent: int, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width, initial_indent=first, subsequent_indent=" " * indent) or [first.rstrip()]


def overview(face: str = "magic") -> str:
    """What ``%mlops`` (or ``mlops``) alone prints: the few commands to start with.

    Args:
        face: ``magic`` or ``cli``; commands that need a kernel keep their ``%mlops`` form in a terminal.
    """
    prefix, in_notebook = _wording(face)
    rows = [(group, f"{prefix}{cli}" if not in_notebook and cli else f"%mlops {magic}", what)
            for group, magic, cli, what in OVERVIEW]
    w1, w2 = (max(len(r[i]) for r in rows) for i in (0, 1))
    lines = ["mlops-jupyter: experiments, data and models, tracked from notebook cells.", ""]
    if not in_notebook:
        lines[1:1] = ["(%mlops commands run in a notebook or IPython after %load_ext mlops_jupyter)"]
    lines += [f"  {g:<{w1}}  {form:<{w2}}  {what}" for g, form, what in rows]
    lines += ["", f"{prefix}help lists every command; {prefix}help COMMAND shows its options "
                  f"(e.g. {prefix}help track)."]
    return "\n".join(lines)


def subcommands(parser: argparse.ArgumentParser) -> dict[str, tuple[str, argparse.ArgumentParser]]:
    """A parser's subcommands in the order they were added: name -> (one-line help, parser)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            # The one-line helps live on argparse's pseudo-actions; %% is argparse's escaping.
            return {a.dest: ((a.help or "").replace("%%", "%"), action.choices[a.dest])
                    for a in action._choices_actions}
    return {}


def _usage(parser: argparse.ArgumentParser, prefix: str, width: int, form: str | None = None) -> list[str]:
    """``usage: %mlops track start [--param K=V] ... [name]`` wrapped, without ``[-h]``."""
    prog = parser.prog.split()  # ["mlops", "track", "start"]
    words = parser.format_usage().split()[1 + len(prog):]  # after "usage:" and the prog
    head = form or (prefix + " ".join(prog[1:])).strip()
    return _wrap("usage: ", " ".join([head, *(w for w in words if w != "[-h]")]), 8, width)


def _options(parser: argparse.ArgumentParser, width: int) -> list[str]:
    """One line per argument: how it is written, what it is for, its default."""
    # argparse's own formatter words each argument (metavars, %(default)s); only its layout,
    # a page per parser, is not what `help track` needs.
    formatter = parser._get_formatter()
    rows = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        text = formatter._expand_help(action) if action.help else ""
        default = action.default
        if default not in (None, False, [], argparse.SUPPRESS) and "default" not in text:
            text = f"{text} (default: {default})".strip()
        rows.append((formatter._format_action_invocation(action), text))
    if not rows:
        return []
    w = min(max(len(inv) for inv, _ in rows), 26)
    out = []
    for inv, text in rows:
        out += _wrap(f"    {inv:<{w}}  ", text, w + 6, width)
    return out


def _grammar() -> argparse.ArgumentParser:
    from .parser import build_parser  # here: the parser module lists this one among its commands

    return build_parser()


def _resolve(path: list[str]) -> tuple[str, argparse.ArgumentParser]:
    """The one-line help and the parser of a command path; did-you-mean on a typo."""
    parser = _grammar()
    summary = ""
    for word in path:
        subs = subcommands(parser)
        if word not in subs:
            raise unknown_command(parser.prog, word, list(subs))
        summary, parser = subs[word]
    return summary, parser


def help_text(topic: list[str] | None = None, face: str = "cli") -> str:
    """``mlops help [COMMAND [SUBCOMMAND]]``: every command by area, or one command's options.

    Args:
        topic: the command path (``[]``: every command; ``["track"]``: its subcommands, each
            with its options, and its cell form).
        face: ``magic`` or ``cli``: which prefix the examples and usages carry.

    Raises:
        CommandError: an unknown command or subcommand (with the likely word).
    """
    prefix, in_notebook = _wording(face)
    width = _width(in_notebook)
    if not topic:
        return _grouped_help(prefix, width)
    path = list(topic)
    summary, parser = _resolve(path)
    lines = _wrap(f"{prefix}{' '.join(path)}: ", summary, 2, width) if summary else []
    subs = subcommands(parser)
    for name, (sub_summary, sub) in subs.items() or [(None, ("", parser))]:
        lines += ["", *_usage(sub, prefix, width)]
        lines += _wrap("  ", sub_summary, 2, width) if name else []
        lines += _options(sub, width)
    cell = CELL_FORMS.get(" ".join(path))
    if cell:
        start, what = cell
        lines += ["", *_usage(_resolve(start.split())[1], prefix, width, form=f"%%mlops {path[0]}"),
                  *_wrap("  ", f"in a notebook: {what}", 2, width)]
    return "\n".join(lines).strip("\n")


def _grouped_help(prefix: str, width: int) -> str:
    commands = subcommands(_grammar())
    listed = {name for _, names in HELP_GROUPS for name in names}
    groups = [*HELP_GROUPS, ("Other", tuple(n for n in commands if n not in listed))]
    w = max(len(n) for n in commands)
    lines = [f"usage: {prefix}COMMAND [ARGS]  (the same commands work as %mlops in a notebook and mlops in a "
             "terminal)"]
    for title, names in groups:
        names = [n for n in names if n in commands]
        if names:
            lines += ["", title]
            for name in names:
                lines += _wrap(f"  {name:<{w}}  ", commands[name][0], w + 4, width)
    lines += ["", f"{prefix}help COMMAND shows a command's subcommands and options (e.g. {prefix}help track)."]
    return "\n".join(lines)
