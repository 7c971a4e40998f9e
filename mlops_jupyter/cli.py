"""``mlops``: the terminal face of the command grammar (exit code 2 on bad input)."""

from __future__ import annotations

import sys

from .commands import CommandError, Context, HelpRequested, parse, run_command
from .exceptions import JobFailed, MlopsError


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # `mlops runs ls | head`: the reader has gone, which is fine
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        ns = parse(argv)
        what = ns.kernel_only  # the command as typed in a notebook, when it works only there
        if what:
            print(f"mlops: `{what}` works inside a notebook or IPython (%mlops {what} ...); "
                  f"in a script use the Python API (import mlops_jupyter as mj)", file=sys.stderr)
            return 2
        # A terminal: no kernel, text output, progress bars when someone watches stderr.
        ctx = Context(interactive=sys.stderr.isatty())
        if ns.command == "fsck" and sys.stderr.isatty():
            from tqdm import tqdm

            ctx.extra["progress"] = lambda it: tqdm(it, desc="verifying blobs", unit="blob")
        result = run_command(ns, ctx)
        from .widgets.terminal import render  # here: help and bad input print no result

        text = render(result)
        if text:
            print(text)
        return ctx.extra.get("exit_code", 0)
    except HelpRequested as h:
        print(h.text.rstrip())
        return 0
    except CommandError as e:
        print(e.one_line(), file=sys.stderr)
        return 2
    except JobFailed as e:  # the job ran and failed: not bad input
        print(f"mlops: {e}", file=sys.stderr)
        return 1
    except MlopsError as e:
        print(f"mlops: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mlops: interrupted", file=sys.stderr)
        return 130
    finally:
        store = sys.modules.get("mlops_jupyter.store")  # help and bad input never opened it: no import
        if store is not None:
            store.close_store()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
