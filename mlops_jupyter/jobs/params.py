"""A job's parameters: type, default and help, the checks every value passes before any kernel
starts, and values read from a command line the way papermill's own CLI reads them.

Types are those papermill can pass into a notebook: ``int``, ``float``, ``str``, ``bool``,
``list``, ``dict``, and ``any`` for a parameter whose default is None or an expression (papermill
overrides it with whatever it is given). job.toml keeps each parameter as an inline table::

    a = { type = "float", default = 2.25, help = "Variable a" }
    msg = { type = "any" }                           # no default: None (TOML has no null)
    d = { type = "any", expression = "a == 3" }      # the notebook computes the default
"""

from __future__ import annotations

import ast
import difflib
import json
import keyword
import os
import shlex
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable

from ..config import toml_value  # noqa: F401 (job.toml's values; spec imports it from here)
from ..exceptions import BadInput

if TYPE_CHECKING:
    from .spec import JobSpec

TYPES = ("int", "float", "str", "bool", "list", "dict", "any")
_PHRASE = {"int": "a whole number", "float": "a number", "bool": "true or false", "str": "text", "list": "a list",
           "dict": "a mapping (NAME: VALUE pairs)",
           "any": "a literal (None, a number, text, true/false, a list or a mapping)"}
# Annotation names (as papermill's inspection or the cell spells them) -> our types; anything else
# is a type papermill cannot pass, so it is not checked.
_ANNOTATIONS = {"int": "int", "float": "float", "str": "str", "bool": "bool", "list": "list", "List": "list",
                "Sequence": "list", "dict": "dict", "Dict": "dict", "Mapping": "dict", "Any": "any",
                "object": "any", "NoneType": "any", "None": "any"}


def check_identifier(name: str, what: str = "parameter name") -> str:
    """*name* if it is a Python identifier (what papermill can assign), else BadInput."""
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise BadInput(f"{what} {name!r} is not a Python identifier")
    return name


def is_literal(value: Any) -> bool:
    """Is *value* something papermill writes into a notebook as a literal: None, a bool, number or
    text, or a list or mapping (text keys) of those?"""
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, list):
        return all(is_literal(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_literal(v) for k, v in value.items())
    return False


def storable(value: Any) -> bool:
    """Can job.toml hold *value* as a default? TOML has no null, so not None, nor None inside."""
    if isinstance(value, list):
        return all(storable(v) for v in value)
    if isinstance(value, dict):
        return all(storable(v) for v in value.values())
    return value is not None and is_literal(value)


def type_of(value: Any) -> str | None:
    """The parameter type a default gives: None takes anything; None for what papermill cannot pass."""
    if value is None:
        return "any"
    if not is_literal(value):
        return None
    for name, t in (("bool", bool), ("int", int), ("float", float), ("str", str), ("list", list), ("dict", dict)):
        if isinstance(value, t):
            return name
    return None  # pragma: no cover (is_literal covers these)


def type_of_annotation(text: str | None) -> str | None:
    """Our type for an annotation (``float``, ``List[str]``, ``Optional[int]``, ``"NoneType"``,
    ``int | None``); None when it names a type papermill cannot pass, or there is none."""
    if not text:
        return None
    text = text.strip().strip("\"'").strip()
    parts = [p.strip() for p in text.split("|") if p.strip() not in ("None", "NoneType")]
    if len(parts) == 1 and parts[0] != text:  # X | None
        return type_of_annotation(parts[0])
    base = text.split("[", 1)[0].strip().rsplit(".", 1)[-1]
    if base == "Optional" and text.endswith("]"):
        return type_of_annotation(text[text.index("[") + 1:-1])
    return _ANNOTATIONS.get(base)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass
class Parameter:
    """One papermill parameter of a job.

    Attributes:
        name: the variable the parameters cell assigns.
        type: one of :data:`TYPES`.
        default: the literal default; None when it is None or an expression.
        help: papermill's help text for it (the comment on its line).
        expression: the default's source when it is an expression the notebook evaluates.
        annotation: the annotation as the cell writes it (kept to rewrite the cell, not in job.toml).
    """

    name: str
    type: str = "any"
    default: Any = None
    help: str = ""
    expression: str | None = None
    annotation: str | None = field(default=None, compare=False)

    @property
    def nullable(self) -> bool:
        """Does None pass? It does when the notebook's own default is None."""
        return self.type == "any" or (self.default is None and self.expression is None)

    def check(self, value: Any, where: str = "") -> Any:
        """*value* (a Python value) if this parameter takes it, as the type (an int for a float
        parameter becomes a float); BadInput otherwise."""
        if isinstance(value, tuple):  # YAML and papermill know lists only
            value = list(value)
        if value is None and self.nullable:
            return None
        ok = {
            "int": isinstance(value, int) and not isinstance(value, bool),
            "float": isinstance(value, (int, float)) and not isinstance(value, bool),
            "bool": isinstance(value, bool),
            "str": isinstance(value, str),
            "list": isinstance(value, list),
            "dict": isinstance(value, dict),
            "any": True,
        }[self.type]
        if not ok or not is_literal(value):
            raise BadInput(f"{where}parameter {self.name} takes {_PHRASE[self.type]}; got {_short(value)}")
        return float(value) if self.type == "float" else value

    def parse(self, text: str, where: str = "") -> Any:
        """A value typed on a command line (``-p NAME VALUE``), read as papermill's CLI reads it
        ('True'/'False'/'None', whole numbers, numbers, else text), except that a text parameter
        keeps its text, a bool parameter also takes true/false, and a list or mapping parameter
        reads Python or JSON syntax."""
        if self.type == "str" and not (self.nullable and text == "None"):
            return text
        value = resolve_text(text)
        if isinstance(value, str):
            if self.type == "bool" and value.strip().lower() in ("true", "false"):
                value = value.strip().lower() == "true"
            elif self.type in ("list", "dict"):
                value = _container(value)
        return self.check(value, where)

    def raw(self, text: str, where: str = "") -> str:
        """A value given with ``-r NAME VALUE``: text, never converted (as papermill's ``-r``)."""
        if self.type not in ("str", "any"):
            raise BadInput(f"{where}parameter {self.name} takes {_PHRASE[self.type]}; -r passes text as it is "
                           f"(use -p {self.name} {shlex.quote(text)})")
        return text

    def describe(self) -> str:
        """``name: type = default  # help``, the way ``mlops job show`` lists it."""
        default = (f"{self.expression}  (an expression the notebook evaluates)" if self.expression is not None
                   else repr(self.default))
        return f"{self.name}: {self.type} = {default}" + (f"  # {self.help}" if self.help else "")

    def source_line(self) -> str:
        """The line that assigns the default in a parameters cell (papermill's Python syntax)."""
        from papermill.translators import PythonTranslator

        value = self.expression if self.expression is not None else PythonTranslator.translate(self.default)
        target = f"{self.name}: {self.annotation}" if self.annotation else self.name
        return f"{target} = {value}" + (f"  # {self.help}" if self.help else "")

    # -- job.toml ---------------------------------------------------------------------------------
    def toml_row(self) -> str:
        """This parameter as a line of job.toml's ``[parameters]`` table."""
        items = [f"type = {toml_value(self.type)}"]
        if self.expression is not None:
            items.append(f"expression = {toml_value(self.expression)}")
        elif self.default is not None:
            items.append(f"default = {toml_value(self.default)}")
        if self.help:
            items.append(f"help = {toml_value(self.help)}")
        return f"{self.name} = {{ {', '.join(items)} }}"

    @classmethod
    def from_toml(cls, name: str, table: Any) -> "Parameter":
        """A parameter from its job.toml entry (what :meth:`toml_row` wrote, or the
        ``{ type, default }`` of earlier versions)."""
        check_identifier(name)
        if not isinstance(table, dict) or table.get("type") not in TYPES:
            raise BadInput(f"parameter {name} needs {{ type = \"{'|'.join(TYPES)}\", default = ... }}")
        unknown = sorted(set(table) - {"type", "default", "help", "expression"})
        if unknown:
            raise BadInput(f"parameter {name} has no key {unknown[0]!r}; keys: type, default, help, expression")
        expression, help_ = table.get("expression"), table.get("help", "")
        if expression is not None and (not isinstance(expression, str) or "default" in table):
            raise BadInput(f"parameter {name}: expression is the text of a Python expression, given instead of a "
                           "default")
        if not isinstance(help_, str):
            raise BadInput(f"parameter {name}: help is text")
        p = cls(name, table["type"], None, help_, expression)
        if "default" in table:
            p.default = p.check(table["default"])
        return p

    @classmethod
    def from_default(cls, name: str, value: Any, help: str = "", annotation: str | None = None,
                     declared: str | None = None, source: str | None = None) -> "Parameter":
        """A parameter from its default.

        Args:
            name: the parameter.
            value: its default, a literal.
            help: its help text.
            annotation: the annotation as the cell writes it, if any.
            declared: the type the cell declares (annotation or ``# type:`` comment); default
                *annotation*. It types the parameter when it names a type papermill passes;
                otherwise the default does.
            source: the default as the cell writes it: kept as an expression when job.toml
                cannot hold the value (None inside a list...).

        Raises:
            BadInput: the default is not of the declared type.
        """
        declared = declared or annotation
        typed = type_of_annotation(declared)
        p = cls(name, typed or type_of(value) or "any", None, help, annotation=annotation)
        if storable(value) or value is None:
            p.default = p.check(value) if typed else value
        else:
            p.expression = source if source is not None else repr(value)
        return p


def _container(text: str) -> Any:
    """A list or mapping typed in JSON or Python syntax; the text itself when it is neither."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def resolve_text(text: str) -> Any:
    """papermill's reading of a ``-p`` value: 'True', 'False', 'None', a whole number, a number,
    else the text (``papermill.cli._resolve_type``)."""
    try:
        from papermill.cli import _resolve_type
    except ImportError:  # papermill moved it; these are its rules
        return {"True": True, "False": False, "None": None}.get(text, _number(text))
    return _resolve_type(text)


def _number(text: str) -> Any:
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


# -- values from a command line --------------------------------------------------------------------------
def command_line_values(spec: "JobSpec", text: Iterable[tuple[str, str]] | None = None,
                        raw: Iterable[tuple[str, str]] | None = None, files: Iterable[str] | None = None,
                        yaml_texts: Iterable[str] | None = None) -> dict[str, Any]:
    """Values for *spec*'s parameters, from a command line as papermill's CLI reads them.

    Sources apply in papermill's order, a later one overriding an earlier one: YAML files
    (``-f``), YAML strings (``-y``), ``-p NAME VALUE`` (see :meth:`Parameter.parse`), then
    ``-r NAME VALUE`` (text, never converted).

    Args:
        spec: the job whose parameters the values are for.
        text: ``-p`` pairs.
        raw: ``-r`` pairs.
        files: ``-f`` paths (or URLs papermill reads).
        yaml_texts: ``-y`` YAML strings.

    Returns:
        Values by name, checked and converted to their parameters' types.

    Raises:
        BadInput: an unknown name, a value of the wrong type, a name given twice with ``-p``/``-r``,
            YAML that cannot be read or is not a mapping. One line, before any kernel starts.
    """
    values: dict[str, Any] = {}
    for path in files or []:
        values.update(spec.check_params(_mapping(_read_yaml_file(path), f"-f {path}"), f"-f {path}: "))
    for doc in yaml_texts or []:
        values.update(spec.check_params(_mapping(_load_yaml(doc, "-y"), "-y"), "-y: "))
    given: set[str] = set()
    for flag, pairs in (("-p", text), ("-r", raw)):
        for name, value in pairs or []:
            if name in given:
                raise BadInput(f"parameter {name} is given twice")
            given.add(name)
            p = spec.parameter(name)
            values[name] = p.parse(value) if flag == "-p" else p.raw(value)
    return values


def _load_yaml(doc: str, what: str) -> Any:
    import yaml
    from papermill.iorw import NoDatesSafeLoader  # dates stay text, as papermill passes them

    try:
        return yaml.load(doc, Loader=NoDatesSafeLoader)
    except yaml.YAMLError as e:
        raise BadInput(f"{what} is not valid YAML: {_yaml_problem(e)}") from None


def _read_yaml_file(path: str) -> Any:
    import yaml
    from papermill.iorw import read_yaml_file

    try:
        with warnings.catch_warnings():  # papermill warns about an unexpected extension; any name will do
            warnings.simplefilter("ignore")
            # papermill resolves a relative path against the folder its last execution ran in
            # (LocalHandler's cwd): the user means this process's folder
            return read_yaml_file(path if "://" in path else os.path.abspath(path))
    except yaml.YAMLError as e:
        raise BadInput(f"-f {path} is not valid YAML: {_yaml_problem(e)}") from None
    except FileNotFoundError:
        raise BadInput(f"-f {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BadInput(f"-f {path}: cannot read it ({getattr(e, 'strerror', None) or e})") from None
    except Exception as e:  # papermill's handlers (s3://, http://...) raise their own errors
        raise BadInput(f"-f {path}: cannot read it ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
                       ) from None


def _yaml_problem(e: Exception) -> str:
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else problem


def _mapping(doc: Any, what: str) -> dict[str, Any]:
    if doc is None:  # an empty file: no values, as papermill treats it
        return {}
    if not isinstance(doc, dict):
        raise BadInput(f"{what} holds {type(doc).__name__} {_short(doc)}, not NAME: VALUE pairs")
    return {str(k): v for k, v in doc.items()}


def unknown_parameter(job: str, name: str, known: Iterable[str], where: str = "") -> BadInput:
    """The error for a name the job has no parameter for, with a did-you-mean."""
    known = list(known)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return BadInput(f"{where}job {job} has no parameter {name!r} (its parameters: {', '.join(known) or 'none'}){hint}")
