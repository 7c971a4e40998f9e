"""What a handler gets from the face that runs it: where its lines go, the notebook's variables,
and what the face can do (declared, so that handlers ask "can it?", never "which face is it?")."""

from __future__ import annotations

import os
from typing import Any, Callable

from ..exceptions import BadInput


class Context:
    """What a handler needs from its face, and what the face can do.

    Args:
        out: where the handler's lines go.
        shell: the IPython shell, when there is one: a bare word naming one of its variables means
            that variable.
        has_kernel: the command runs in the user's kernel, which outlives it: the notebook being
            run is known, a server can keep running in the background, and what a handler
            returns becomes the cell's value (a model, a version).
        rich_display: results are shown by IPython's display (DataFrames, widgets); without it the
            face prints text, so listings come as plain rows (no pandas) and tables pre-formatted.
        interactive: someone watches the output as it comes: progress bars are worth drawing.
        output_is_saved: what the command prints is kept (with the notebook): never print a secret.
        extra: what a handler leaves for its face (``exit_code``, ``watch``), or a face for a
            handler (``progress``).
    """

    # A plain class, not a dataclass: `mlops --help` should not wait for dataclasses (and inspect)
    # to import.
    def __init__(self, out: Callable[[str], None] = print, shell: Any = None, *, has_kernel: bool = False,
                 rich_display: bool = False, interactive: bool = False, output_is_saved: bool = False,
                 extra: dict | None = None):
        self.out = out
        self.shell = shell
        self.has_kernel = has_kernel
        self.rich_display = rich_display
        self.interactive = interactive
        self.output_is_saved = output_is_saved
        self.extra = {} if extra is None else extra

    def lookup(self, word: str) -> tuple[Any, bool]:
        """In a notebook, a bare identifier that names a variable means that variable: (its value,
        True); else (*word*, False). A path that exists wins over a variable of the same name."""
        if self.shell is not None and word.isidentifier() and word in self.shell.user_ns and not os.path.exists(word):
            return self.shell.user_ns[word], True
        return word, False

    def variable(self, word: str | None, what: str) -> Any:
        """The notebook variable *word* names (None for None); *what* says what it is for, in errors.

        Raises:
            BadInput: no such variable.
        """
        if word is None:
            return None
        value, is_var = self.lookup(word)
        if is_var:
            return value
        if self.shell is not None and rooted_in(word, self.shell.user_ns):
            # a slice or attribute of a variable (X_val[:32], df.iloc[:100]): the user's own
            # expression, evaluated in the user's own namespace, as the cell would
            try:
                return eval(word, self.shell.user_ns)  # noqa: S307
            except Exception as e:
                raise BadInput(f"{word} ({what}) failed: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}") from None
        raise BadInput(f"{word!r} is not a variable in the notebook ({what})")

    def progress(self, desc: str) -> Callable | None:
        """A tqdm wrapper for long loops when someone is watching, else None."""
        if not self.interactive:
            return None

        def wrap(items):
            from tqdm.auto import tqdm

            return tqdm(items, desc=desc, unit="item", leave=False)

        return wrap


class Listing:
    """What an ``ls`` command gives a face without rich display: plain rows, so that listing needs
    no pandas (a notebook gets a :func:`listing_frame`). *kind*: runs, datasets, data_versions,
    models, model_versions or alias_moves; *title*: what the rows are (``Versions of train``)."""

    def __init__(self, kind: str, rows: list[dict], title: str | None = None):
        self.kind = kind
        self.rows = rows
        self.title = title

    def __repr__(self) -> str:
        return f"Listing({self.kind!r}, {len(self.rows)} rows)"


_LISTING_FRAME: list = []


def listing_frame(kind: str, frame, title: str | None = None):
    """*frame* (a listing's DataFrame: ``data ls``, ``model ls``, ``model history``) as the
    notebook shows it: a DataFrame still (filter it, sort it, ``len`` it) that draws itself as a
    table for people (local times, sizes, short ids), by the renderers registered for
    ``ListingFrame``. Derived frames (``df[df.kind == "table"]``) are plain DataFrames."""
    out = _listing_frame_class()(frame)
    out.attrs["mlops_listing"] = {"kind": kind, "title": title}
    return out


def _listing_frame_class():
    if _LISTING_FRAME:
        return _LISTING_FRAME[0]
    import pandas as pd

    from .. import rendering

    class ListingFrame(pd.DataFrame):
        @property
        def _constructor(self):
            return pd.DataFrame

        def _repr_mimebundle_(self, include=None, exclude=None):
            return {rendering.TEXT: rendering.render(self, rendering.TEXT),
                    rendering.HTML: rendering.render(self, rendering.HTML)}

    ListingFrame.__qualname__ = "ListingFrame"  # registered as mlops_jupyter.commands.context.ListingFrame
    _LISTING_FRAME.append(ListingFrame)
    return ListingFrame


def __getattr__(name: str):
    # `context.ListingFrame`, made when first asked for (it needs pandas)
    if name == "ListingFrame":
        return _listing_frame_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def project_store():
    """The project's store (opened on first use; imported only when a handler needs it)."""
    from ..store import open_store

    return open_store()


def quick_store_url() -> str:
    """The project's store URL, for the terminal's quick listings (store.quickread)."""
    from ..config import settings

    return settings().store_url


def rooted_in(text: str, namespace: dict) -> bool:
    """Whether *text* is one expression of subscripts, attributes and calls on a variable of *namespace*."""
    import ast

    try:
        node = ast.parse(text, mode="eval").body
    except SyntaxError:
        return False
    while isinstance(node, (ast.Subscript, ast.Attribute, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return isinstance(node, ast.Name) and node.id in namespace
