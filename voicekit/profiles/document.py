"""The YAML side of profiles: documents that remember where each key was written, and
the one way a problem is said (``file:line: yaml.path: what is wrong (did you mean ...)``).

A :class:`Doc` is plain data (dicts, lists, scalars) plus ``origins``, a map from a
YAML path (a tuple of keys and list indexes) to where it came from: ``"file.yaml:7"``
for a key read from a file, ``"--set stt.model=nova-2"`` for an override. Error
messages look up the longest recorded prefix of the path they are about, so a bad
value deep inside a mapping still points at a line. The first module of
:mod:`voicekit.profiles` (document → find → read → model → load → validate → build);
nothing here knows about backends.
"""

from __future__ import annotations

import copy
import difflib
import functools
import re
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from voicekit.errors import ProfileError

YPath = tuple[Any, ...]


@dataclass
class Doc:
    """A YAML document and, for each YAML path in it, where that path was written."""

    data: Any
    origins: dict[YPath, str] = field(default_factory=dict)

    def where(self, path: YPath) -> str:
        """``file:line`` (or ``--set ...``) of the longest recorded prefix of ``path``."""
        return where(self.origins, path)


def where(origins: Mapping[YPath, str], path: YPath) -> str:
    """Where the longest recorded prefix of ``path`` was written (``<profile>`` if nowhere)."""
    for end in range(len(path), -1, -1):
        found = origins.get(path[:end])
        if found is not None:
            return found
    return "<profile>"


def dotted(path: Iterable[Any]) -> str:
    """``("llm", "tools", 0, "name")`` → ``llm.tools[0].name`` (control characters escaped: one line)."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return one_line(out) or "(top level)"


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def one_line(text: str) -> str:
    """``text`` with its control characters (newlines, tabs...) escaped, so a message stays one line."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def suggest(word: object, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate, or an empty string."""
    close = difflib.get_close_matches(str(word), list(candidates), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def shown(path: Path) -> str:
    """How a file is named in messages: relative to the working directory when inside it."""
    absolute, cwd = path.absolute(), Path.cwd()
    if cwd == Path(cwd.anchor):  # relative to / reads like a mistake
        return str(absolute)
    try:
        return str(absolute.relative_to(cwd))
    except ValueError:
        return str(absolute)


# --- reading ------------------------------------------------------------------------


#: the largest profile file read
MAX_PROFILE_BYTES = 1 << 20
#: values in a document, aliases expanded (a profile holds a few hundred)
MAX_YAML_NODES = 20_000
#: nesting of mappings and lists, aliases expanded
MAX_YAML_DEPTH = 40


def check_yaml(text: str, name: str) -> None:
    """Refuse a YAML document that would be too big once its aliases are expanded, or nested
    too deep, before it is built (an alias bomb of a few hundred bytes stands for billions of
    values). Reads the parser's events once, never expanding anything."""
    sizes: dict[str, tuple[int, int]] = {}  # anchor -> (values, depth) it stands for
    open_: list[list[Any]] = [[0, 0, None, None]]  # per open collection: values, depth below, anchor, mark
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            if len(open_) > MAX_YAML_DEPTH:
                raise ProfileError(f"{name}{_line(event)}: nested deeper than {MAX_YAML_DEPTH} levels")
            open_.append([0, 0, event.anchor, event.start_mark])
            continue
        if isinstance(event, yaml.CollectionEndEvent):
            values, depth, anchor, _ = open_.pop()
            size = (values + 1, depth + 1)
        elif isinstance(event, yaml.AliasEvent):
            if event.anchor not in sizes:
                continue  # undefined, or it refers to itself: _check_keys says so, with the line and path
            size, anchor = sizes[event.anchor], None
        elif isinstance(event, yaml.ScalarEvent):
            size, anchor = (1, 0), event.anchor
        else:
            continue
        if anchor is not None:
            sizes[anchor] = size
        parent = open_[-1]
        parent[0] += size[0]
        parent[1] = max(parent[1], size[1])
        if parent[0] > MAX_YAML_NODES or len(open_) - 1 + size[1] > MAX_YAML_DEPTH:
            what = (
                f"more than {MAX_YAML_NODES} values"
                if parent[0] > MAX_YAML_NODES
                else f"nested deeper than {MAX_YAML_DEPTH} levels"
            )
            raise ProfileError(f"{name}{_line(event)}: {what} once its aliases are expanded")


def _line(event: yaml.Event) -> str:
    mark = event.start_mark
    return f":{mark.line + 1}" if mark is not None else ""


def read_doc(path: Path) -> Doc:
    """Parse one YAML file, recording the line of every mapping key and list item.

    Duplicate keys, which PyYAML would resolve silently to the last, are an error; so are
    a file over 1 MiB, and a document too large or too deep once its aliases are expanded
    (:func:`check_yaml`).
    """
    name = shown(path)
    try:
        if not path.is_file():
            raise ProfileError(f"{name}: cannot read profile: not a regular file")
        with path.open("rb") as handle:
            raw = handle.read(MAX_PROFILE_BYTES + 1)
        if len(raw) > MAX_PROFILE_BYTES:
            raise ProfileError(f"{name}: a profile of more than {MAX_PROFILE_BYTES // 1024} KiB: is it the right file?")
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{name}: cannot read profile: {exc}") from exc
    if len(text) > _CACHED_CHARS:
        return _parse(text, name)
    return copy.deepcopy(_parse_cached(text, name))  # the caller may change what it gets


#: profiles up to this size are parsed once per process (a server loads its profile per connection)
_CACHED_CHARS = 64 * 1024


@functools.lru_cache(maxsize=64)
def _parse_cached(text: str, name: str) -> Doc:
    return _parse(text, name)


def _parse(text: str, name: str) -> Doc:
    loader: yaml.SafeLoader | None = None
    try:
        check_yaml(text, name)
        loader = yaml.SafeLoader(text)  # inside the try: its reader refuses control characters
        node = loader.get_single_node()
        origins: dict[YPath, str] = {(): name}
        if node is not None:
            _check_keys(node, (), name, ())
        data = loader.construct_document(node) if node is not None else None
        if node is not None:
            _record(loader, node, (), origins, name)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        at = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        raise ProfileError(f"{name}{at}: invalid YAML: {what}") from exc
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        char = exc.character
        said = f"#x{char:04x}" if isinstance(char, int) else repr(char)
        raise ProfileError(f"{name}:{line}: invalid YAML: the control character {said} is not allowed") from exc
    except yaml.YAMLError as exc:
        raise ProfileError(f"{name}: invalid YAML: {one_line(str(exc).splitlines()[0])}") from exc
    finally:
        if loader is not None:
            loader.dispose()
    return Doc(data, origins)


def _check_keys(node: yaml.Node, path: YPath, name: str, ancestors: tuple[int, ...]) -> None:
    """Reject what PyYAML lets through silently: a key written twice, a recursive alias."""
    if id(node) in ancestors:
        raise ProfileError(f"{name}:{node.start_mark.line + 1}: {dotted(path)}: an alias refers to itself")
    ancestors = (*ancestors, id(node))
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    raise ProfileError(
                        f"{name}:{line}: {dotted((*path, key_node.value))}: duplicate key "
                        f"(first written on line {seen[key_node.value]})"
                    )
                seen[key_node.value] = line
            _check_keys(value_node, (*path, getattr(key_node, "value", "?")), name, ancestors)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _check_keys(item, (*path, index), name, ancestors)


def _record(loader: yaml.SafeLoader, node: yaml.Node, path: YPath, origins: dict[YPath, str], name: str) -> None:
    # Walks the composed node tree beside the constructed data. Merge keys (<<) are
    # already flattened into node.value by the constructor, so paths match the data.
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            sub = (*path, key)
            origins[sub] = f"{name}:{key_node.start_mark.line + 1}"
            _record(loader, value_node, sub, origins, name)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            sub = (*path, index)
            origins[sub] = f"{name}:{item.start_mark.line + 1}"
            _record(loader, item, sub, origins, name)


# --- pydantic errors as profile problems -------------------------------------------------


def model_problems(
    exc: ValidationError,
    model: type[BaseModel],
    prefix: YPath,
    origins: Mapping[YPath, str],
    *,
    noun: str = "option",
    hidden: frozenset[YPath] = frozenset(),
    secret: frozenset[YPath] = frozenset(),
) -> list[str]:
    """One line per pydantic error: ``file:line: stt.endpointng_ms: unknown option (did you mean ...)``.

    Without ``origins`` (options outside a profile) lines start with the path. Errors
    at ``hidden`` paths (unresolved placeholders) are dropped; values at
    ``secret`` paths, or under secret-looking keys, are never echoed, nor are mappings
    and lists (they may hold secrets). A number out of range names the whole range.
    """
    problems = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        path = (*prefix, *loc)
        if any(path[: len(h)] == h for h in hidden):
            continue
        at = f"{where(origins, path)}: {dotted(path)}" if origins else dotted(path)
        kind = err["type"]
        if kind == "extra_forbidden":
            problems.append(f"{at}: unknown {noun}{suggest(loc[-1], field_names(model, loc[:-1]))}")
            continue
        if kind == "missing":
            problems.append(f"{at}: missing required {noun}")
            continue
        message = str(err["msg"]).removeprefix("Value error, ")
        if kind in _BOUND_ERRORS:
            message = _range_message(model, loc) or message
        if kind in ("literal_error", "enum"):
            expected = re.findall(r"'([^']*)'", str(err.get("ctx", {}).get("expected", "")))
            message += suggest(err["input"], expected)
        elif loc and path not in secret and not is_secret_key(loc[-1]) and not isinstance(err["input"], dict | list):
            message += f" (got {err['input']!r})"
        problems.append(f"{at}: {message}")
    return problems


_BOUND_ERRORS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")


def _range_message(model: type[BaseModel], loc: YPath) -> str | None:
    """``must be from 50 to 10000`` for a field declared with ``Field(ge=50, le=10000)``."""
    info = _field_info(model, loc)
    if info is None:
        return None
    lower = upper = ""
    for bound in info.metadata:
        if getattr(bound, "ge", None) is not None:
            lower = f"at least {bound.ge}"
        elif getattr(bound, "gt", None) is not None:
            lower = f"above {bound.gt}"
        if getattr(bound, "le", None) is not None:
            upper = f"at most {bound.le}"
        elif getattr(bound, "lt", None) is not None:
            upper = f"below {bound.lt}"
    if lower.startswith("at least") and upper.startswith("at most"):
        return f"must be from {lower.removeprefix('at least ')} to {upper.removeprefix('at most ')}"
    text = " and ".join(part for part in (lower, upper) if part)
    return f"must be {text}" if text else None


def _field_info(model: type[BaseModel], loc: YPath) -> FieldInfo | None:
    """The field at ``loc`` inside ``model`` (through nested models), if there is one."""
    info = model.model_fields.get(str(loc[0])) if loc else None
    for part in loc[1:]:
        nested = _nested_model(info)
        info = nested.model_fields.get(str(part)) if nested is not None else None
    return info


def _nested_model(info: FieldInfo | None) -> type[BaseModel] | None:
    """The pydantic model a field holds (``Sub`` or ``Sub | None``), if it holds one."""
    if info is None:
        return None
    for candidate in (info.annotation, *typing.get_args(info.annotation)):
        if _is_model(candidate):
            return candidate  # type: ignore[no-any-return]
    return None


def field_names(model: type[BaseModel], loc: YPath = ()) -> list[str]:
    """The field names (and aliases) of ``model``, or of the nested model at ``loc``."""
    found = _nested_model(_field_info(model, loc)) if loc else model
    if found is None:
        return []
    names = []
    for name, info in found.model_fields.items():
        names.append(name)
        if isinstance(info.alias, str):
            names.append(info.alias)
    return names


def _is_model(t: object) -> bool:
    try:
        return isinstance(t, type) and issubclass(t, BaseModel)
    except TypeError:  # parametrized generics such as list[int]
        return False


_SECRET_WORDS = {"token", "secret", "password", "passwd", "credential", "credentials", "apikey"}


def is_secret_key(key: object) -> bool:
    """``api_key``, ``session_token``, ``client_secret``, ``password``… but not ``max_tokens``."""
    if not isinstance(key, str):
        return False
    words = re.split(r"[_\-.]", key.lower())
    return bool(_SECRET_WORDS.intersection(words)) or key.lower().endswith(("api_key", "access_key", "private_key"))
