"""Where to start (`%mlops` alone), every command by area (`%mlops help`), one command's options
(`%mlops help track`), and a did-you-mean for typos: the same in a notebook and a terminal."""

import pytest
from IPython.core.error import UsageError

from mlops_jupyter import commands

from .conftest import PY, python_env, run_cell, run_cli

ADMIN = ("access", "key", "migrate", "gc", "fsck", "audit")


def test_mlops_alone_is_a_short_overview(ip, capsys):
    ip.run_line_magic("mlops", "")
    out = capsys.readouterr().out
    assert len(out.splitlines()) <= 15 and "usage:" not in out
    for form in ("%mlops track start NAME", "%%mlops track NAME", "%mlops log loss=0.3", "%mlops track stop",
                 "%mlops runs", "%mlops show RUN", "%mlops compare RUN", "%mlops data add",
                 "%mlops model register", "%mlops promote"):
        assert form in out, form
    assert out.rstrip().endswith("(e.g. %mlops help track).") and "%mlops help lists every command" in out
    assert not any(f" {name} " in out for name in ADMIN)


def test_help_lists_every_command_by_area_with_admin_apart(ip, capsys):
    ip.run_line_magic("mlops", "help")
    out = capsys.readouterr().out
    assert out.startswith("usage: %mlops COMMAND")
    sections = {}
    for block in out.split("\n\n")[1:-1]:
        title, *rows = block.splitlines()
        sections[title] = [row.split()[0] for row in rows if row.startswith("  ") and not row.startswith("   ")]
    assert list(sections)[0] == "Track experiments" and list(sections)[-1].startswith("Administration")
    assert sections[list(sections)[-1]] == list(ADMIN)
    listed = [name for names in sections.values() for name in names]
    assert sorted(listed) == sorted(commands._subcommands(commands.build_parser()))  # each once
    assert "Other" not in sections  # a new command must be given its area in HELP_GROUPS


def test_help_track_shows_each_subcommand_with_its_options_and_the_cell_form(ip, capsys):
    ip.run_line_magic("mlops", "help track")
    out = capsys.readouterr().out
    start, stop, cell = out.index("usage: %mlops track start"), out.index("usage: %mlops track stop"), \
        out.index("usage: %%mlops track")
    assert start < stop < cell
    assert all(opt in out[start:stop] for opt in ("--param K=V", "--tag K=V", "--notebook PATH", "name"))
    assert "--status {finished,failed,killed}" in out[stop:cell] and "(default: finished)" in out[stop:cell]
    assert "--param K=V" in out[cell:] and "the cell is one run" in out[cell:]
    # `?` and --help give the same text
    ip.run_cell("%mlops track?")
    assert capsys.readouterr().out.strip() == out.strip()
    ip.run_line_magic("mlops", "track --help")
    assert capsys.readouterr().out.strip() == out.strip()


def test_cell_magic_help_shows_the_cell_form(ip, capsys):
    run_cell(ip, "%%mlops track --help\nx = 1")
    assert "usage: %%mlops track" in capsys.readouterr().out


@pytest.mark.parametrize("line,message", [
    ("rnus", "mlops: unknown command 'rnus'; did you mean `runs`?"),
    ("runs lss", "mlops runs: unknown subcommand 'lss'; did you mean `runs ls`?"),
    ("data ad x", "mlops data: unknown subcommand 'ad'; did you mean `data add`?"),
    ("runs zzz", "mlops runs: unknown subcommand 'zzz'; choose from ls, show, rm"),
])
def test_typo_is_one_usage_line_with_a_suggestion(ip, capsys, line, message):
    with pytest.raises(UsageError) as e:
        ip.run_line_magic("mlops", line)
    assert str(e.value) == message
    r = run_cell(ip, f"%mlops {line}")  # as shown in a notebook: one line, no traceback
    out = capsys.readouterr()
    assert not r.success and f"UsageError: {message}" in out.out + out.err and "Traceback" not in out.out + out.err


@pytest.mark.parametrize("args,message", [
    (["rnus"], "mlops: unknown command 'rnus'; did you mean `runs`?"),
    (["runs", "lss"], "mlops runs: unknown subcommand 'lss'; did you mean `runs ls`?"),
    (["help", "rnus"], "mlops: unknown command 'rnus'; did you mean `runs`?"),
    (["frobnicate"], "mlops: unknown command 'frobnicate'; `mlops help` lists the commands"),
])
def test_cli_typo_exits_2_with_one_line(tmp_path, args, message):
    r = run_cli(*args, cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.strip() == message and r.stdout == ""


def test_cli_help_overview_and_topics(tmp_path):
    alone = run_cli(cwd=tmp_path)
    assert alone.returncode == 0 and "mlops runs" in alone.stdout and "mlops help lists every command" in alone.stdout
    for args in (["help"], ["--help"], ["-h"]):
        r = run_cli(*args, cwd=tmp_path)
        assert r.returncode == 0 and r.stdout.startswith("usage: mlops COMMAND") and "Administration" in r.stdout
    r = run_cli("help", "track", cwd=tmp_path)
    assert r.returncode == 0 and "usage: mlops track stop" in r.stdout and "usage: %%mlops track" in r.stdout
    r = run_cli("runs", "ls", "--help", cwd=tmp_path)
    assert r.returncode == 0 and "--where EXPR" in r.stdout
    assert not (tmp_path / ".mlops").exists()  # help opened no store


def test_help_text_needs_neither_the_store_nor_pandas():
    import subprocess

    code = ("import sys\nfrom mlops_jupyter import commands\n"
            "commands.parse([]); commands.overview('cli'); commands.help_text([]); commands.help_text(['track'])\n"
            "try:\n    commands.parse(['rnus'])\nexcept commands.CommandError:\n    pass\n"
            "print(sorted(m for m in ('pandas', 'numpy', 'IPython', 'mlops_jupyter.store', 'mlops_jupyter.tracking')"
            " if m in sys.modules))")
    r = subprocess.run([PY, "-c", code], capture_output=True, text=True, env=python_env(), timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stderr
