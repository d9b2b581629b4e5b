"""The YAML side of profiles: documents that remember where each key was written.

A :class:`Doc` is plain data (dicts, lists, scalars) plus ``origins``, a map from a
YAML path (a tuple of keys and list indexes) to where it came from: ``"file.yaml:7"``
for a key read from a file, ``"--set stt.model=nova-2"`` for an override. Error
messages look up the longest recorded prefix of the path they are about, so a bad
value deep inside a mapping still points at a line. :mod:`voicekit.profiles` builds
on this; nothing here knows about backends.
"""

from __future__ import annotations

import difflib
import re
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from voicekit.errors import MissingSecretError, ProfileError

YPath = tuple[Any, ...]
ROLES = ("stt", "llm", "output")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass
class Doc:
    """A YAML document and, for each YAML path in it, where that path was written."""

    data: Any
    origins: dict[YPath, str] = field(default_factory=dict)

    def where(self, path: YPath) -> str:
        """``file:line`` (or ``--set ...``) of the longest recorded prefix of ``path``."""
        return where(self.origins, path)


def where(origins: Mapping[YPath, str], path: YPath) -> str:
    for end in range(len(path), -1, -1):
        found = origins.get(path[:end])
        if found is not None:
            return found
    return "<profile>"


def dotted(path: Iterable[Any]) -> str:
    """``("llm", "tools", 0, "name")`` → ``llm.tools[0].name``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


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


def read_doc(path: Path) -> Doc:
    """Parse one YAML file, recording the line of every mapping key and list item.

    Duplicate keys, which PyYAML would resolve silently to the last, are an error.
    """
    name = shown(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{name}: cannot read profile: {exc}") from exc
    loader = yaml.SafeLoader(text)
    try:
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
    except yaml.YAMLError as exc:
        raise ProfileError(f"{name}: invalid YAML: {exc}") from exc
    finally:
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


def normalize(doc: Doc) -> None:
    """Expand shorthands in place: ``stt: deepgram`` and ``turns: {interruptions: true}``."""
    data = doc.data
    for role in ROLES:
        if isinstance(data.get(role), str):
            data[role] = {"use": data[role]}
            doc.origins[(role, "use")] = doc.where((role,))
    turns = data.get("turns")
    if isinstance(turns, dict) and isinstance(turns.get("interruptions"), bool):
        mode = "full_duplex" if turns["interruptions"] else "half_duplex"
        if turns.get("mode", mode) == mode:  # a conflict is left for TurnsConfig to report
            turns["mode"] = mode
            doc.origins[("turns", "mode")] = doc.where(("turns", "interruptions"))
            del turns["interruptions"]


# --- merging and overrides --------------------------------------------------------------


def merge(base: Doc, child: Doc) -> Doc:
    """``child`` over ``base``: mappings merge, lists and scalars replace.

    A backend section whose ``use`` names another backend replaces the base's
    section instead of merging with it: the base's options belong to its backend.
    """
    origins = dict(base.origins)
    data = _merge(base.data, child.data, (), origins)
    origins.update(child.origins)
    return Doc(data, origins)


def _merge(base: Any, child: Any, path: YPath, origins: dict[YPath, str]) -> Any:
    if not (isinstance(base, dict) and isinstance(child, dict)):
        _forget(origins, path)
        return child
    if len(path) == 1 and path[0] in ROLES and child.get("use", base.get("use")) != base.get("use"):
        _forget(origins, path)
        return child
    out = {
        key: _merge(base[key], value, (*path, key), origins) if key in base else value for key, value in child.items()
    }
    out.update((key, value) for key, value in base.items() if key not in child)
    return out


def _forget(origins: dict[YPath, str], prefix: YPath) -> None:
    for key in [k for k in origins if k[: len(prefix)] == prefix and len(k) > len(prefix)]:
        del origins[key]


def apply_override(doc: Doc, text: str) -> None:
    """Apply one ``--set dotted.key=value``; the value is read as YAML (``3``, ``true``, ``[a, b]``)."""
    origin = f"--set {text}"
    key, sep, raw = text.partition("=")
    key = key.strip()
    parts = key.split(".")
    if not sep or not key or not all(p.strip() for p in parts):
        raise ProfileError(f"{origin}: expected KEY=VALUE with a dotted key, e.g. --set stt.model=nova-2")
    if parts[0] == "extends":
        raise ProfileError(f"{origin}: extends cannot be overridden; load the other profile instead")
    value = _parse_value(raw, origin)
    node = doc.data
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
            doc.origins[tuple(parts[: depth + 1])] = origin
        elif not isinstance(child, dict):
            where_ = doc.where(tuple(parts[: depth + 1]))
            raise ProfileError(
                f"{origin}: cannot set {key}: {dotted(parts[: depth + 1])} ({where_}) is a "
                f"{type(child).__name__}, not a mapping"
            )
        node = child
    path, last = tuple(parts), parts[-1]
    if len(parts) == 1 and last in ROLES and isinstance(value, str):
        value = {"use": value}
    if len(parts) == 2 and parts[0] in ROLES and last == "use" and node.get("use") != value:
        node.clear()  # another backend: the old backend's options do not apply to it
        _forget(doc.origins, path[:1])
        doc.origins[path[:1]] = origin
    if path == ("turns", "interruptions") and isinstance(value, bool):
        path, last, value = ("turns", "mode"), "mode", "full_duplex" if value else "half_duplex"
    node[last] = value
    _forget(doc.origins, path)
    doc.origins[path] = origin


def _parse_value(raw: str, origin: str) -> Any:
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ProfileError(f"{origin}: the value is not valid YAML ({problem}); quote it if it is text") from exc
    # "You are: helpful" would parse as a mapping; only explicit {...} means one
    if isinstance(value, dict) and not raw.lstrip().startswith("{"):
        return raw.strip()
    return value


def has_placeholder(value: object) -> bool:
    """Whether ``value`` is text holding a ``${NAME}`` reference."""
    return isinstance(value, str) and _ENV_REF.search(value) is not None


# --- secrets ---------------------------------------------------------------------------


def substitute_secrets(doc: Doc, env: Mapping[str, str] | None) -> tuple[Any, frozenset[YPath], frozenset[YPath]]:
    """Replace ``${NAME}`` and ``{$env: NAME}`` with values from ``env``.

    With ``env=None`` nothing is resolved: ``{$env: NAME}`` becomes the placeholder
    ``"${NAME}"``. Returns the new data, the paths whose values came from the
    environment, and the paths still holding a placeholder.
    """
    from_env: set[YPath] = set()
    placeholders: set[YPath] = set()
    missing: list[str] = []

    def walk(value: Any, path: YPath) -> Any:
        if isinstance(value, dict) and "$env" in value:
            name = value["$env"]
            if len(value) != 1 or not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
                raise ProfileError(
                    f"{doc.where(path)}: {dotted(path)}: write {{$env: NAME}} with one environment variable name"
                )
            value = f"${{{name}}}"
        if isinstance(value, dict):
            return {k: walk(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, (*path, i)) for i, v in enumerate(value)]
        if not has_placeholder(value):
            return value
        if env is None:
            placeholders.add(path)
            return value
        from_env.add(path)

        def lookup(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                missing.append(f"{doc.where(path)}: {dotted(path)}: environment variable {name} is not set")
                return ""
            return env[name]

        return _ENV_REF.sub(lookup, value)

    data = walk(doc.data, ())
    if missing:
        raise MissingSecretError("; ".join(missing))
    return data, frozenset(from_env), frozenset(placeholders)


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

    Errors at ``hidden`` paths (unresolved placeholders) are dropped; values at
    ``secret`` paths, or under secret-looking keys, are never echoed.
    """
    problems = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        path = (*prefix, *loc)
        if any(path[: len(h)] == h for h in hidden):
            continue
        at = f"{where(origins, path)}: {dotted(path)}"
        kind = err["type"]
        if kind == "extra_forbidden":
            problems.append(f"{at}: unknown {noun}{suggest(loc[-1], field_names(model, loc[:-1]))}")
        elif kind == "missing":
            problems.append(f"{at}: missing required {noun}")
        else:
            message = str(err["msg"]).removeprefix("Value error, ")
            if kind in ("literal_error", "enum"):
                expected = re.findall(r"'([^']*)'", str(err.get("ctx", {}).get("expected", "")))
                message += suggest(err["input"], expected)
            elif loc and path not in secret and not is_secret_key(loc[-1]):
                message += f" (got {err['input']!r})"
            problems.append(f"{at}: {message}")
    return problems


def field_names(model: type[BaseModel], loc: YPath = ()) -> list[str]:
    """The field names (and aliases) of ``model``, or of the nested model at ``loc``."""
    for part in loc:
        info = model.model_fields.get(str(part))
        if info is None:
            return []
        nested = [t for t in (info.annotation, *typing.get_args(info.annotation)) if _is_model(t)]
        if not nested:
            return []
        model = nested[0]
    names = []
    for name, info in model.model_fields.items():
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
