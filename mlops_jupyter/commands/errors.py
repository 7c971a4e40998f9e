"""What parsing a command line raises instead of printing and exiting: faces translate both (the
magic: ``UsageError`` or the help in the notebook's words; the terminal: exit 2, or the help)."""

from __future__ import annotations

from ..exceptions import BadInput, MlopsError


class CommandError(BadInput):
    """Bad command-line input; carries the usage of the (sub)command."""

    def __init__(self, message: str, usage: str = ""):
        super().__init__(message)
        self.usage = usage.strip()

    def one_line(self, prefix: str = "") -> str:
        """The error and the usage on one line; *prefix* (``%`` in a notebook) goes before `mlops`."""
        usage = " ".join(self.usage.replace("usage:", "").split())
        text = str(self).replace("`mlops ", f"`{prefix}mlops ")
        return text + (f" (usage: {prefix}{usage})" if usage else "")


class HelpRequested(MlopsError):
    """``--help`` was asked for: *text* is the help in the terminal's words, *topic* the command
    path (``["track", "start"]``) for a face that words it its own way."""

    def __init__(self, text: str, topic: list[str] | None = None):
        super().__init__(text)
        self.text = text
        self.topic = topic
