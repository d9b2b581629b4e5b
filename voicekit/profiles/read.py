"""Read a profile: one file with everything it ``extends``, then ``--set`` overrides, then secrets.

The second step of find → read → validate → build. ``extends:`` merges a profile over its
parent (mappings merge, lists and scalars replace; a role section switching to another
backend starts afresh); shorthands (``stt: deepgram``, ``turns: {interruptions: true}``)
are expanded here, once, in each file and in each override; ``--set`` overrides apply
last; ``${NAME}`` and ``{$env: NAME}`` are read from the environment. Nothing here checks
what the keys mean: that is :mod:`voicekit.profiles.load` and :mod:`~voicekit.profiles.validate`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from voicekit.errors import MissingSecretError, ProfileError, VoicekitError
from voicekit.profiles.document import Doc, YPath, check_yaml, dotted, one_line, read_doc, shown, suggest
from voicekit.profiles.find import SUFFIXES, candidates, find_profile, known_names, looks_like_path, profile_dirs
from voicekit.roles import ROLES

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TURN_MODES = {True: "full_duplex", False: "half_duplex"}


def read_profile(name_or_path: str | Path, overrides: Sequence[str] = ()) -> tuple[Path, Doc]:
    """The profile's file and its document: ``extends`` merged, overrides applied, secrets untouched."""
    path = find_profile(name_or_path)
    doc = load_chain(path, [])
    for text in overrides:
        apply_override(doc, text)
    return path, doc


def merged_document(name_or_path: str | Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The merged document with overrides applied and secrets left as ``${NAME}``; not validated."""
    _, doc = read_profile(name_or_path, overrides)
    data, _, _ = substitute_secrets(doc, None)
    return data  # type: ignore[no-any-return]


# --- extends ------------------------------------------------------------------------------


def load_chain(path: Path, chain: list[Path], at: str = "") -> Doc:
    """One file with everything it ``extends`` merged under it (``at``: the extends: naming it)."""
    real = path.resolve()
    if real in chain:
        cycle = " -> ".join(shown(p) for p in [*chain[chain.index(real) :], real])
        raise ProfileError(f"{at}: extends: cycle: {cycle}")
    doc = read_doc(path)
    if not isinstance(doc.data, dict):
        what = "empty" if doc.data is None else f"a {type(doc.data).__name__}"
        raise ProfileError(f"{shown(path)}: a profile is a YAML mapping (description:, llm:, ...), this one is {what}")
    normalize(doc)
    parent = doc.data.pop("extends", None)
    if parent is None:
        return doc
    at = doc.where(("extends",))
    if not isinstance(parent, str) or not parent.strip():
        raise ProfileError(f"{at}: extends: expected a profile name or a relative path, got {parent!r}")
    base = load_chain(_resolve_parent(parent, path, at), [*chain, real], at)
    base.data.pop("abstract", None)  # being abstract is not inherited
    return merge(base, doc)


def _resolve_parent(parent: str, child: Path, at: str) -> Path:
    if looks_like_path(parent):
        path = (child.parent / parent).expanduser()
        if not path.is_file():
            raise ProfileError(f"{at}: extends: no such file: {shown(path)}")
        return path
    # The child's own directory first, so that installed profiles extend each other; a
    # profile that extends its own name gets the one it hides (./profiles/offline.yaml
    # may extend the installed offline).
    dirs = [child.parent] + [d for _, d in profile_dirs()]
    for path in candidates(parent, dirs):
        if path.resolve() != child.resolve():
            return path
    known = known_names(dirs)
    raise ProfileError(f"{at}: extends: no profile named '{parent}'{suggest(parent, known)}")


# --- shorthands -----------------------------------------------------------------------------


def expand_shorthand(path: YPath, value: Any, at: str) -> tuple[YPath, Any]:
    """The one place shorthands are defined: ``stt: deepgram`` is ``stt: {use: deepgram}``,
    ``turns.interruptions: true`` is ``turns.mode: full_duplex`` (``false``: half_duplex)."""
    if len(path) == 1 and path[0] in ROLES and isinstance(value, str):
        return path, {"use": value}
    if path == ("turns", "interruptions"):
        if not isinstance(value, bool):
            raise ProfileError(f"{at}: turns.interruptions: expected true or false, got {value!r}")
        return ("turns", "mode"), _TURN_MODES[value]
    return path, value


def normalize(doc: Doc) -> None:
    """Expand the shorthands of one file in place (see :func:`expand_shorthand`)."""
    data = doc.data
    for role in ROLES:
        if isinstance(data.get(role), str):
            _, data[role] = expand_shorthand((role,), data[role], doc.where((role,)))
            doc.origins[(role, "use")] = doc.where((role,))
    turns = data.get("turns")
    if isinstance(turns, dict) and "interruptions" in turns:
        at = doc.where(("turns", "interruptions"))
        value = turns.pop("interruptions")
        _, mode = expand_shorthand(("turns", "interruptions"), value, at)
        if turns.get("mode", mode) != mode:
            raise ProfileError(
                f"{at}: turns.interruptions: {str(value).lower()} contradicts turns.mode: {turns['mode']} "
                f"({doc.where(('turns', 'mode'))})"
            )
        turns["mode"] = mode
        doc.origins[("turns", "mode")] = at


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
    origin = f"--set {one_line(text if len(text) <= 100 else text[:100] + '…')}"
    key, sep, raw = text.partition("=")
    key = key.strip()
    parts = key.split(".")
    if not sep or not key or not all(p.strip() for p in parts):
        raise ProfileError(f"{origin}: expected KEY=VALUE with a dotted key, e.g. --set stt.model=nova-2")
    if parts[0] == "extends":
        raise ProfileError(f"{origin}: extends cannot be overridden; load the other profile instead")
    path, value = expand_shorthand(tuple(parts), _parse_value(raw, origin), origin)
    node = doc.data
    for depth, part in enumerate(path[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
            doc.origins[path[: depth + 1]] = origin
        elif not isinstance(child, dict):
            where_ = doc.where(path[: depth + 1])
            raise ProfileError(
                f"{origin}: cannot set {key}: {dotted(path[: depth + 1])} ({where_}) is a "
                f"{type(child).__name__}, not a mapping"
            )
        node = child
    last = path[-1]
    if len(path) == 2 and path[0] in ROLES and last == "use" and node.get("use") != value:
        node.clear()  # another backend: the old backend's options do not apply to it
        _forget(doc.origins, path[:1])
        doc.origins[path[:1]] = origin
    node[last] = value
    _forget(doc.origins, path)
    doc.origins[path] = origin


def _parse_value(raw: str, origin: str) -> Any:
    try:
        check_yaml(raw, origin)
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ProfileError(f"{origin}: the value is not valid YAML ({problem}); quote it if it is text") from exc
    # "You are: helpful" would parse as a mapping; only explicit {...} means one
    if isinstance(value, dict) and not raw.lstrip().startswith("{"):
        return raw.strip()
    return value


# --- secrets ---------------------------------------------------------------------------


def has_placeholder(value: object) -> bool:
    """Whether ``value`` is text holding a ``${NAME}`` reference."""
    return isinstance(value, str) and _ENV_REF.search(value) is not None


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


# --- listing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProfileInfo:
    """A profile as listed: where it is, and what it says it is."""

    name: str
    path: Path
    origin: str  # "project" | "user" | "package"
    description: str
    abstract: bool = False  # only meant to be extended
    error: str | None = None  # why it could not be read


def list_profiles() -> list[ProfileInfo]:
    """Every profile that can be used by name; a name in an earlier directory hides later ones."""
    infos: dict[str, ProfileInfo] = {}
    for origin, directory in profile_dirs():
        if not directory.is_dir():
            continue
        for path in sorted(directory.iterdir()):
            if path.suffix not in SUFFIXES or path.stem in infos or not path.is_file():
                continue
            description, abstract, error = "", False, None
            try:
                doc = load_chain(path, [])
                description = str(doc.data.get("description") or "")
                abstract = doc.data.get("abstract") is True
            except VoicekitError as exc:
                error = str(exc)
            infos[path.stem] = ProfileInfo(path.stem, path, origin, description, abstract, error)
    return sorted(infos.values(), key=lambda info: info.name)
