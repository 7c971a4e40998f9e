"""One command grammar for ``%mlops`` in a notebook and ``mlops`` in a terminal.

``%mlops runs ls --last 5`` and ``mlops runs ls --last 5`` are parsed by the same parser and run
by the same handler; the faces differ only in what they can do (declared on the
:class:`Context`: a kernel, rich display, someone watching) and in how they show results
(widgets and rich display in a notebook, text in a terminal). Handlers call the core API and
return core objects.

One module per area (``track``, ``runs``, ``data``, ``model``, ``explain``, ``serve``, ``job``,
``monitor``, ``integrations``, ``admin``, ``help``, ``demo``) adds its commands to the grammar
that ``parser`` assembles; ``values`` reads what is typed, ``context`` is what a face gives a
handler, ``errors`` what parsing raises.
"""

from .context import Context
from .errors import CommandError, HelpRequested
from .help import help_text, overview
from .help import subcommands as _subcommands  # noqa: F401  (tests list the commands with it)
from .parser import build_parser, parse, run_command

__all__ = ["CommandError", "Context", "HelpRequested", "build_parser", "help_text", "overview", "parse",
           "run_command"]
