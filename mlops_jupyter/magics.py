"""``%mlops`` / ``%%mlops``: the notebook face of the command grammar, plus cell capture.

Every error the core raises on purpose becomes IPython's ``UsageError``: one line,
no traceback. While a run is active, each executed cell's source (redacted), execution
count, duration and outcome are recorded with it.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import time

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, needs_local_scope

from .commands import CommandError, Context, HelpRequested, help_text, parse, run_command
from .commands.values import key_values, parse_literal
from .exceptions import MlopsError
from .tracking import notebook as nbsource
from .tracking import run as tracking

_state: dict = {"recorder": None, "magics": None}


def _usage_error(e: Exception) -> UsageError:
    if isinstance(e, CommandError):
        return UsageError(e.one_line("%"))
    return UsageError(str(e))


def _help(h: HelpRequested) -> str:
    """``--help`` in the notebook's words (``%mlops``, ``%%mlops``)."""
    if h.topic is None:
        return h.text.replace("usage: mlops", "usage: %mlops").rstrip()
    return help_text(h.topic, face="magic")


def _notice(text: str) -> None:
    # In the cell's output, as the command's own messages are (stderr would paint it as an error).
    print(text)


class CellRecorder:
    """Records executed cells into the active runs (IPython's pre/post_run_cell events)."""

    def __init__(self, shell):
        self.shell = shell
        self.source = ""
        self.started = 0.0
        self.count = None
        self.recorded: set[str] = set()
        tracking.end_hooks.append(self.on_run_end)

    def pre(self, info) -> None:
        self.source = info.raw_cell or ""
        self.started = time.time()
        self.count = self.shell.execution_count
        self.recorded = set()
        injected = nbsource.papermill_parameters(self.source)
        if injected is not None:
            tracking.kernel_context["papermill"] = injected

    def _record(self, run, error: str | None) -> None:
        if run.run_id in self.recorded:
            return
        self.recorded.add(run.run_id)
        run.add_cell(self.source, self.count, self.started, time.time() - self.started, error)

    def on_run_end(self, run, status: str) -> None:
        # A run that ends in this cell (track stop, %%mlops track) keeps this cell too.
        if self.started:
            self._record(run, None if status == "finished" else f"run ended as {status}")

    def post(self, result) -> None:
        err = result.error_in_exec or result.error_before_exec
        error = f"{type(err).__name__}: {err}"[:2000] if err is not None else None
        tracking.kernel_context["last_cell_failed"] = err is not None
        if os.environ.get("MLOPS_RUN_ID"):
            # a job's kernel: what autologging still writes is written within the cell, so that the
            # execution's decision sees it and nothing is left to the kernel's last seconds
            tracking.settle()
        for run in tracking.active_runs():
            self._record(run, error)
        self.started = 0.0

    def close(self) -> None:
        if self.on_run_end in tracking.end_hooks:
            tracking.end_hooks.remove(self.on_run_end)


def _in_kernel() -> bool:
    from .widgets.views import in_kernel

    return in_kernel()


@magics_class
class MlopsMagics(Magics):
    """%mlops COMMAND ... — run `%mlops help` for the list of commands."""

    @needs_local_scope
    @line_cell_magic
    def mlops(self, line: str = "", cell: str | None = None, local_ns=None):
        """Jupyter-native MLOps. `%mlops` alone: where to start; `%mlops help`: every command;
        `%mlops help track`: one command's subcommands and options.

        %mlops track start NAME [--param K=V]... [--tag K=V]...   start a run
        %mlops log loss=0.3 acc=0.9 [--step N]                    log metrics
        %mlops track stop                                         end the run
        %%mlops track NAME [--param K=V]...                       the cell is one run
        %mlops runs [--last N] [--where EXPR] [--sort KEY]        runs as a table (returns a DataFrame)
        %mlops show RUN / %mlops compare RUN RUN... / %mlops watch [RUN]
        """
        try:
            argv = shlex.split(line)
        except ValueError as e:
            raise UsageError(f"mlops: cannot split the command line ({e})") from None
        try:
            if cell is not None:
                return self._cell(argv, cell)
            ns = parse(argv)
            if ns.terminal_only:
                raise UsageError(f"mlops {ns.command} runs in a terminal: !mlops {ns.command}")
            # The user's kernel: its variables, rich display, someone watching, output kept in the notebook.
            ctx = Context(shell=self.shell, has_kernel=True, rich_display=True, interactive=True,
                          output_is_saved=True)
            result = run_command(ns, ctx)
        except HelpRequested as h:
            print(_help(h))
            return None
        except MlopsError as e:
            raise _usage_error(e) from None
        if ns.command == "track" and ns.action == "start" and _in_kernel():
            from .widgets.live import display_live

            display_live(result.store, result.run_id)
            return None
        if ns.command == "watch":
            return self._watch(ctx.extra["watch"])
        if ns.command == "track":
            return None
        return result

    def _watch(self, run_id: str):
        from .store import open_store

        if _in_kernel():
            from .widgets.live import display_live

            display_live(open_store(), run_id)
            return None
        from .tracking.query import get_run

        rec = get_run(run_id)
        print(f"{rec.name} ({rec.run_id[:8]}) {rec.status}: " +
              ", ".join(f"{k}={v:.6g}" for k, v in sorted(rec.metrics.items())))
        return None

    def _cell(self, argv: list[str], cell: str):
        if not argv or argv[0] != "track":
            raise UsageError("%%mlops works with `track` only: %%mlops track NAME [--param K=V]...")
        try:
            ns = parse(["track", "start", *argv[1:]])
        except HelpRequested:
            print(help_text(["track"], face="magic"))  # it ends with the %%mlops track form
            return None
        except MlopsError as e:
            raise _usage_error(e) from None
        try:
            params = {k: parse_literal(v) for k, v in key_values(ns.param, "param").items()}
            tags = key_values(ns.tag, "tag")
            run = tracking.start_run(ns.name, params=params, tags=tags, notebook=ns.notebook)
        except MlopsError as e:
            raise _usage_error(e) from None
        live = None
        if _in_kernel():
            from .widgets.live import display_live

            live = display_live(run.store, run.run_id)
        try:
            with run:
                value = self._exec(cell)
        finally:
            if live is not None:
                live.finish()
        return value

    def _exec(self, cell: str):
        """Run the cell body in the user namespace; the last expression is the cell's value."""
        shell = self.shell
        source = shell.transform_cell(cell)
        tree = ast.parse(source)
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        code = compile(tree, "<mlops track cell>", "exec")
        exec(code, shell.user_global_ns, shell.user_ns)
        if last is not None:
            return eval(compile(last, "<mlops track cell>", "eval"), shell.user_global_ns, shell.user_ns)
        return None


_HELP_LINE = re.compile(r"^(\s*)%{1,2}mlops((?:\s+[\w-]+)*)\s*\?{1,2}\s*$")


def help_suffix(lines: list[str]) -> list[str]:
    """``%mlops track?`` means ``%mlops help track`` (IPython would look up an object ``track``)."""
    if lines:
        m = _HELP_LINE.match(lines[0])
        if m and m.group(2).strip():
            return [f"{m.group(1)}%mlops help{m.group(2)}\n"]
    return lines


def load(ipython) -> None:
    if _state["magics"] is not None:
        return
    tracking.kernel_context["user_ns"] = ipython.user_ns
    # papermill injects its parameters cell before the notebook loads us: find it in the history.
    for source in reversed(getattr(ipython.history_manager, "input_hist_raw", []) or []):
        injected = nbsource.papermill_parameters(source or "")
        if injected is not None:
            tracking.kernel_context["papermill"] = injected
            break
    magics = MlopsMagics(ipython)
    ipython.register_magics(magics)
    ipython.input_transformers_cleanup.append(help_suffix)
    tracking.notice_hooks.append(_notice)
    recorder = CellRecorder(ipython)
    ipython.events.register("pre_run_cell", recorder.pre)
    ipython.events.register("post_run_cell", recorder.post)
    _state.update(recorder=recorder, magics=magics)
    if _in_kernel():  # a notebook will show charts: start the offline drawing engine now, on a thread
        from .charts.static import warm

        warm()


def unload(ipython) -> None:
    recorder = _state.get("recorder")
    if recorder is not None:
        for event, fn in (("pre_run_cell", recorder.pre), ("post_run_cell", recorder.post)):
            try:
                ipython.events.unregister(event, fn)
            except ValueError:
                pass
        recorder.close()
    if help_suffix in ipython.input_transformers_cleanup:
        ipython.input_transformers_cleanup.remove(help_suffix)
    if _notice in tracking.notice_hooks:
        tracking.notice_hooks.remove(_notice)
    _state.update(recorder=None, magics=None)
