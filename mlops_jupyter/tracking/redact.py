"""Secrets kept out of the store: names that look secret, passwords inside URLs, string literals
assigned to secret-looking names in cell sources."""

from __future__ import annotations

import re

REDACTED = "***REDACTED***"
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|KEY|CREDENTIAL|AUTH", re.IGNORECASE)


def is_secret(name: str) -> bool:
    return bool(SECRET_NAME.search(str(name)))


# A password inside a URL: scheme://user:PASSWORD@host (database URLs, proxies, git remotes).
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@'\"]*:)(?P<pw>[^\s@/'\"]+)(?P<at>@)")


def redact_urls(text: str) -> str:
    """Replace the password of every ``scheme://user:password@host`` in *text*."""
    if "://" not in text:
        return text
    return _URL_PASSWORD.sub(lambda m: f"{m.group('head')}{REDACTED}{m.group('at')}", text)


def redact_mapping(values: dict) -> dict:
    return {k: (REDACTED if is_secret(k) else redact_urls(v) if isinstance(v, str) else v) for k, v in values.items()}


_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_STR = r"""(?:[rRbBuUfF]{0,2})(?:'''[\s\S]*?'''|\"\"\"[\s\S]*?\"\"\"|'[^'\n]*'|"[^"\n]*")"""
# NAME = "literal"  /  NAME: str = "literal"  /  obj.NAME = "literal"
_ASSIGN = re.compile(rf"(?P<lhs>\b(?P<name>{_NAME})\s*(?::\s*[\w\[\], .]+)?\s*=\s*)(?P<val>{_STR})")
# os.environ["NAME"] = "literal"  /  d["NAME"] = "literal"  /  f(NAME="literal")
_SUBSCRIPT = re.compile(rf"""(?P<lhs>\[\s*['"](?P<name>[^'"\n]+)['"]\s*\]\s*=\s*)(?P<val>{_STR})""")
_KWARG_DICT = re.compile(rf"""(?P<lhs>['"](?P<name>[^'"\n]+)['"]\s*:\s*)(?P<val>{_STR})""")
# --param NAME=value / --tag NAME=value / NAME=value on magic lines
_FLAG = re.compile(r"(?P<lhs>(?:^|\s)(?P<name>[A-Za-z_][\w.\-]*)=)(?P<val>\"[^\"]*\"|'[^']*'|\S+)")


def redact_source(source: str) -> str:
    """Replace string literals assigned to secret-looking names, and passwords inside URLs, with a
    placeholder."""
    source = redact_urls(source)
    if not SECRET_NAME.search(source):
        return source

    def sub(m: re.Match) -> str:
        if not is_secret(m.group("name")):
            return m.group(0)
        return f'{m.group("lhs")}"{REDACTED}"'

    out = _ASSIGN.sub(sub, source)
    out = _SUBSCRIPT.sub(sub, out)
    out = _KWARG_DICT.sub(sub, out)
    lines = []
    for line in out.splitlines(keepends=True):
        if line.lstrip().startswith(("%", "!")):
            line = _FLAG.sub(sub, line)
        lines.append(line)
    return "".join(lines)
