"""One convention for every run configuration: a typed dataclass, a docstring per field, YAML files.

A configuration is a ``@dataclass`` (usually subclassing :class:`Config`) whose fields each carry a
docstring: the string literal right under the field, as in ``agents/grpo/config.py``. From that one
definition this module derives

- loading and saving: :func:`config_from_dict`, :func:`load_config` (YAML or JSON) and
  :func:`save_config`; unknown fields, missing required fields and values of the wrong type raise
  :class:`~medscope_gym.errors.ConfigError` naming the field and the file;
- command-line flags: :func:`add_config_arguments` turns field ``max_steps`` into ``--max-steps``
  (type from the annotation; ``bool`` → ``--flag/--no-flag``; ``Literal`` → choices; tuples and lists
  comma-separated; dicts and nested configs as JSON; ``none`` for an optional value), with the field's
  docstring as help and the dataclass default shown; :func:`config_from_args` builds the config from
  ``--config FILE.yaml`` with the given flags overriding the file.

Value checks in ``__post_init__`` use the shared validators (:func:`positive_int`, :func:`probability`,
:func:`one_of`, ... and :func:`check` to apply one to several fields), so every config words its
errors the same way. The project documentation describes each config's fields.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import json
import math
import re
import textwrap
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

from medscope_gym.atomic import atomic_write_text
from medscope_gym.errors import ConfigError

__all__ = [
    "Config",
    "add_config_arguments",
    "check",
    "config_from",
    "config_from_args",
    "config_from_dict",
    "config_to_dict",
    "field_docs",
    "flag_name",
    "load_config",
    "non_negative_float",
    "non_negative_int",
    "one_of",
    "positive_float",
    "positive_int",
    "probability",
    "save_config",
]

C = TypeVar("C")

_MISSING = dataclasses.MISSING


# ---------------------------------------------------------------------------------------------- validators
def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def positive_int(value: Any, name: str) -> int:
    """``value`` if it is an integer >= 1 (not a bool), else ConfigError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def non_negative_int(value: Any, name: str) -> int:
    """``value`` if it is an integer >= 0 (not a bool), else ConfigError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{name} must be an integer >= 0, got {value!r}")
    return value


def positive_float(value: Any, name: str) -> float:
    """``value`` if it is a finite number > 0, else ConfigError."""
    if not _is_number(value) or value <= 0:
        raise ConfigError(f"{name} must be a finite number > 0, got {value!r}")
    return value


def non_negative_float(value: Any, name: str) -> float:
    """``value`` if it is a finite number >= 0, else ConfigError."""
    if not _is_number(value) or value < 0:
        raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
    return value


def probability(value: Any, name: str) -> float:
    """``value`` if it is a number in [0, 1], else ConfigError."""
    if not _is_number(value) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name} must be a number in [0, 1], got {value!r}")
    return value


def one_of(choices: Iterable[Any]) -> Callable[[Any, str], Any]:
    """A validator accepting only ``choices``: ``check(self, one_of(("ppo", "a2c")), "algo")``."""
    allowed = tuple(choices)

    def validate(value: Any, name: str) -> Any:
        if value not in allowed:
            raise ConfigError(f"{name} must be one of {', '.join(map(str, allowed))}, got {value!r}")
        return value

    return validate


def check(config: Any, validator: Callable[[Any, str], Any], *names: str, optional: bool = False) -> None:
    """Apply ``validator`` to the fields ``names`` of ``config`` (``optional``: None passes)."""
    for name in names:
        value = getattr(config, name)
        if optional and value is None:
            continue
        validator(value, name)


# ------------------------------------------------------------------------------------------ field types
def _type_hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception as exc:  # an annotation naming something the module does not import
        raise TypeError(f"cannot resolve the field types of {cls.__name__}: {exc}") from exc


def _union_args(tp: Any) -> tuple[Any, ...] | None:
    if typing.get_origin(tp) in (Union, types.UnionType):
        return typing.get_args(tp)
    return None


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    """(the annotation without None, whether None is allowed)."""
    args = _union_args(tp)
    if args is None or type(None) not in args:
        return tp, False
    rest = tuple(a for a in args if a is not type(None))
    return (rest[0] if len(rest) == 1 else Union[rest]), True  # noqa: UP007


def _is_mapping_type(tp: Any) -> bool:
    origin = typing.get_origin(tp) or tp
    return isinstance(origin, type) and issubclass(origin, Mapping)


def _describe(tp: Any) -> str:
    tp, optional = _strip_optional(tp)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        text = "one of " + ", ".join(map(repr, args))
    elif origin in (tuple, list):
        text = "a list"
    elif _union_args(tp) is not None:
        text = " or ".join(_describe(a) for a in _union_args(tp))
    elif _is_mapping_type(tp) or dataclasses.is_dataclass(tp):
        text = "a mapping"
    elif tp is bool:
        text = "true or false"
    elif tp is int:
        text = "an integer"
    elif tp is float:
        text = "a number"
    elif tp is str:
        text = "a string"
    else:
        text = f"a {getattr(tp, '__name__', tp)}"
    return text + (" or null" if optional else "")


def _coerce(value: Any, tp: Any, name: str) -> Any:
    """``value`` checked against (and converted to) the annotation ``tp``; TypeError when it does not fit."""
    if tp is Any:
        return value
    inner, optional = _strip_optional(tp)
    if value is None:
        if optional:
            return None
        raise TypeError
    tp = inner
    members = _union_args(tp)
    if members is not None:
        for member in members:
            try:
                return _coerce(value, member, name)
            except TypeError:
                continue
        raise TypeError
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        if value in args:
            return value
        raise TypeError
    if origin in (tuple, list):
        if isinstance(value, str) or not isinstance(value, (list, tuple)):
            raise TypeError
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise TypeError
            items = [_coerce(v, a, name) for v, a in zip(value, args)]
        else:
            item = args[0] if args else Any
            items = [_coerce(v, item, name) for v in value]
        return tuple(items) if origin is tuple else items
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value
        if isinstance(value, Mapping):
            from_dict = getattr(tp, "from_dict", None)
            if from_dict is not None:
                try:
                    return from_dict(dict(value))
                except ConfigError:
                    raise
                except (TypeError, ValueError, KeyError) as exc:
                    raise ConfigError(f"{name}: {exc}") from exc
            return config_from_dict(tp, value, source=name)
        raise TypeError
    if _is_mapping_type(tp):
        if isinstance(value, Mapping):
            return dict(value)
        raise TypeError
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise TypeError
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise TypeError
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-6 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                raise TypeError from None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise TypeError
    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        raise TypeError
    return value


# ------------------------------------------------------------------------------------------- field docs
@functools.cache
def _own_field_docs(cls: type) -> dict[str, str]:
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    tree = ast.parse(source)
    node = next((n for n in tree.body if isinstance(n, ast.ClassDef)), None)
    docs: dict[str, str] = {}
    if node is None:
        return docs
    body = node.body
    for stmt, following in zip(body, body[1:]):
        if (
            isinstance(stmt, ast.AnnAssign)
            and isinstance(stmt.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[stmt.target.id] = inspect.cleandoc(following.value.value)
    return docs


def field_docs(cls: type) -> dict[str, str]:
    """Field name → its docstring (the string literal under the field), for ``cls`` and its bases."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if dataclasses.is_dataclass(klass):
            docs.update(_own_field_docs(klass))
    return docs


# ------------------------------------------------------------------------------------ dicts and files
def _has_default(field: dataclasses.Field) -> bool:
    return field.default is not _MISSING or field.default_factory is not _MISSING


def _default(field: dataclasses.Field) -> Any:
    if field.default is not _MISSING:
        return field.default
    if field.default_factory is not _MISSING:
        return field.default_factory()
    return _MISSING


def config_from_dict(cls: type[C], data: Mapping[str, Any], source: str = "config") -> C:
    """``cls(**data)`` after checking the names and types of ``data``; problems raise ConfigError.

    ``source`` (a file name, ``"command line"``, ...) starts every error message. Values are converted
    where the annotation asks for it: lists to tuples, numbers written as strings (YAML 1.1 reads ``1e-6``
    as one) to floats, mappings to nested configs.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: the config must be a mapping of field: value")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        renamed = getattr(cls, "RENAMED", {})
        hints = [f"{k} (now {renamed[k]})" if k in renamed else k for k in unknown]
        raise ConfigError(f"{source}: unknown {cls.__name__} field(s): {', '.join(hints)}")
    missing = [name for name, f in fields.items() if not _has_default(f) and name not in data]
    if missing:
        raise ConfigError(f"{source}: missing required field(s): {', '.join(missing)}")
    hints = _type_hints(cls)
    values: dict[str, Any] = {}
    for name, value in data.items():
        try:
            values[name] = _coerce(value, hints.get(name, Any), name)
        except TypeError:
            raise ConfigError(
                f"{source}: {name} must be {_describe(hints.get(name, Any))}, got {value!r}"
            ) from None
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None
    try:
        return cls(**values)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: {exc}") from exc


def _plain(value: Any) -> Any:
    if hasattr(value, "to_dict") and not isinstance(value, type):
        return _plain(value.to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def config_to_dict(config: Any) -> dict[str, Any]:
    """The fields of ``config`` as plain JSON/YAML values (tuples → lists, nested configs → dicts)."""
    return {f.name: _plain(getattr(config, f.name)) for f in dataclasses.fields(config)}


def _read_mapping(path: Path, cls: type) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {cls.__name__} file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the config must be a mapping of field: value")
    return data


def load_config(cls: type[C], path: str | Path, **overrides: Any) -> C:
    """A ``cls`` from a YAML (or JSON) file of fields; ``overrides`` that are not None win."""
    path = Path(path)
    data = _read_mapping(path, cls)
    data.update({k: v for k, v in overrides.items() if v is not None})
    return config_from_dict(cls, data, source=str(path))


def save_config(config: Any, path: str | Path) -> None:
    """Write ``config`` atomically: JSON for a ``.json`` path, YAML otherwise; reloads to an equal config."""
    path = Path(path)
    data = config_to_dict(config)
    if path.suffix == ".json":
        text = json.dumps(data, indent=2) + "\n"
    else:
        import yaml

        text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    atomic_write_text(path, text)


class Config:
    """Mixin of the run configurations: dict, YAML and JSON in and out, with the checks above.

    A subclass may set ``RENAMED = {"old_name": "new_name"}`` so that files using a field's former name
    get a pointed error message.
    """

    RENAMED: typing.ClassVar[dict[str, str]] = {}

    def to_dict(self) -> dict[str, Any]:
        """Plain field values (JSON/YAML ready)."""
        return config_to_dict(self)

    @classmethod
    def from_dict(cls: type[C], data: Mapping[str, Any], source: str = "config") -> C:
        """See :func:`config_from_dict`."""
        return config_from_dict(cls, data, source)

    @classmethod
    def from_yaml(cls: type[C], path: str | Path, **overrides: Any) -> C:
        """Read a YAML (or JSON) file of fields; ``overrides`` that are not None (e.g. from code) win."""
        return load_config(cls, path, **overrides)

    def save(self, path: str | Path) -> None:
        """Write the config (JSON for ``.json``, else YAML); ``from_yaml`` reads either back."""
        save_config(self, path)


def config_from(cls: type[C], value: C | Mapping[str, Any] | None, argument: str) -> C:
    """``cls()`` for None, ``value`` itself, or ``cls(**value)``; unknown fields raise ConfigError.

    ``argument`` names the parameter the value came in through, for the error message.
    """
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if isinstance(value, Mapping):
        unknown = set(value) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"unknown {cls.__name__} field(s): {', '.join(sorted(unknown))}")
        return cls(**value)
    raise ConfigError(f"{argument} must be a {cls.__name__} or a dict, got {type(value).__name__}")


# --------------------------------------------------------------------------------------------- argparse
def flag_name(field_name: str) -> str:
    """``max_steps`` → ``--max-steps``."""
    return "--" + field_name.replace("_", "-")


def _scalar_parser(tp: Any, name: str) -> Callable[[str], Any]:
    """str → value of the (non-container) annotation ``tp``."""
    members = _union_args(tp)
    if members is not None:
        if str in members and any(_is_mapping_type(m) for m in members):
            return _str_or_json
        parsers = [_scalar_parser(m, name) for m in members]

        def first(text: str) -> Any:
            for parse in parsers:
                try:
                    return parse(text)
                except (ValueError, argparse.ArgumentTypeError):
                    continue
            raise argparse.ArgumentTypeError(f"expected {_describe(tp)}, got {text!r}")

        return first
    if tp is bool:
        return _bool
    if tp in (int, float, str):
        return tp
    if typing.get_origin(tp) is Literal:
        choices = typing.get_args(tp)

        def literal(text: str) -> Any:
            for choice in choices:
                if str(choice) == text:
                    return choice
            raise argparse.ArgumentTypeError(f"expected one of {', '.join(map(str, choices))}, got {text!r}")

        return literal
    if _is_mapping_type(tp) or dataclasses.is_dataclass(tp):
        return _json_mapping
    return str


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "yes", "1", "on"):
        return True
    if lowered in ("false", "no", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _json_mapping(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r} ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def _str_or_json(text: str) -> Any:
    """A name, or a JSON object when the text starts with ``{`` (e.g. a reward spec)."""
    return _json_mapping(text) if text.lstrip().startswith("{") else text


def _value_parser(tp: Any, name: str) -> tuple[Callable[[str], Any], Any]:
    """(str → value, the annotation without None) for one field."""
    inner, optional = _strip_optional(tp)
    origin, args = typing.get_origin(inner), typing.get_args(inner)
    if origin in (tuple, list):
        if origin is tuple and args and args[-1] is not Ellipsis:
            item_parsers = [_scalar_parser(a, name) for a in args]
        else:
            item_parsers = None
            item_parser = _scalar_parser(args[0] if args else str, name)

        def parse_list(text: str) -> Any:
            parts = [p.strip() for p in text.split(",") if p.strip()]
            if item_parsers is not None:
                if len(parts) != len(item_parsers):
                    raise argparse.ArgumentTypeError(
                        f"expected {len(item_parsers)} comma-separated values, got {text!r}"
                    )
                return tuple(p(v) for p, v in zip(item_parsers, parts))
            items = [item_parser(v) for v in parts]
            return tuple(items) if origin is tuple else items

        parse = parse_list
    else:
        parse = _scalar_parser(inner, name)
    if not optional:
        return parse, inner

    def parse_optional(text: str) -> Any:
        return None if text.strip().lower() in ("none", "null") else parse(text)

    return parse_optional, inner


def _metavar(tp: Any, name: str) -> str | None:
    inner, _ = _strip_optional(tp)
    origin, args = typing.get_origin(inner), typing.get_args(inner)
    if origin in (tuple, list):
        item = args[0] if args else str
        return f"{_metavar(item, name) or name.upper()},..."
    if origin is Literal:
        return "{" + ",".join(map(str, args)) + "}"
    members = _union_args(inner)
    if members is not None and str in members and any(_is_mapping_type(m) for m in members):
        return "NAME|JSON"
    if _is_mapping_type(inner) or dataclasses.is_dataclass(inner):
        return "JSON"
    if inner is int:
        return "N"
    if inner is float:
        return "X"
    return None


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return ",".join(_show(v) for v in value) or "''"
    if isinstance(value, Mapping) or dataclasses.is_dataclass(value):
        return json.dumps(_plain(value))
    return str(value)


_ROLE = re.compile(r":[a-z]+:`~?([^`]*?)`")


def _plain_text(doc: str) -> str:
    """A field docstring as one line of plain text (reST roles and literals unwrapped)."""
    text = _ROLE.sub(lambda m: m.group(1).rsplit(".", 1)[-1], " ".join(doc.split()))
    return text.replace("``", "")


def _help(doc: str, field: dataclasses.Field, optional: bool) -> str:
    text = _plain_text(doc)
    shown = f"default: {_show(_default(field))}" if _has_default(field) else "required"
    if optional:
        shown += "; accepts none"
    text = f"{text} ({shown})" if text else f"({shown})"
    return text.replace("%", "%%")


def add_config_arguments(
    parser: argparse.ArgumentParser,
    cls: type,
    *,
    exclude: Iterable[str] = (),
    positional: Iterable[str] = (),
    config_file: bool = True,
    title: str | None = None,
) -> None:
    """Add one flag per field of the dataclass ``cls`` (and ``--config FILE`` when ``config_file``).

    Field ``max_steps`` becomes ``--max-steps``; a bool field ``--flag/--no-flag``. Flags that are not
    given stay out of the parsed namespace, so :func:`config_from_args` can tell "not given" (the file's
    value, else the dataclass default) from any given value. Fields in ``positional`` become positional
    arguments; fields in ``exclude`` get no flag.
    """
    excluded, positionals = set(exclude), set(positional)
    docs = field_docs(cls)
    hints = _type_hints(cls)
    if config_file:
        parser.add_argument(
            "--config",
            metavar="FILE.yaml",
            default=argparse.SUPPRESS,
            help=f"YAML (or JSON) file of {cls.__name__} fields; flags given on the command line win",
        )
    group = parser.add_argument_group(title or f"{cls.__name__} fields")
    for field in dataclasses.fields(cls):
        if not field.init or field.name in excluded:
            continue
        tp = hints.get(field.name, str)
        inner, optional = _strip_optional(tp)
        text = _help(docs.get(field.name, ""), field, optional)
        if field.name in positionals:
            parse, _ = _value_parser(tp, field.name)
            group.add_argument(field.name, type=parse, help=text)
            continue
        if inner is bool:
            group.add_argument(
                flag_name(field.name),
                dest=field.name,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=text,
            )
            continue
        parse, _ = _value_parser(tp, field.name)
        group.add_argument(
            flag_name(field.name),
            dest=field.name,
            type=parse,
            default=argparse.SUPPRESS,
            metavar=_metavar(tp, field.name),
            help=text,
        )


def config_from_args(cls: type[C], args: argparse.Namespace, *, extra: Mapping[str, Any] | None = None) -> C:
    """``cls`` from ``--config FILE`` (when given) with every flag given on the command line on top.

    ``extra`` holds values a command sets itself (they win over both).
    """
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    given = {k: v for k, v in vars(args).items() if k in names}
    path = getattr(args, "config", None)
    if path is not None:
        data = _read_mapping(Path(path), cls)
        source = f"{path} (with command-line flags)" if given else str(path)
    else:
        data, source = {}, "command line"
    data.update(given)
    data.update(extra or {})
    fields = [f for f in dataclasses.fields(cls) if f.init]
    missing = [f.name for f in fields if not _has_default(f) and f.name not in data]
    if missing:
        flags = ", ".join(flag_name(m) for m in missing)
        given_as = f"give {flags} or set them in --config"
        raise ConfigError(f"{source}: missing required field(s): {', '.join(missing)} ({given_as})")
    return config_from_dict(cls, data, source)
