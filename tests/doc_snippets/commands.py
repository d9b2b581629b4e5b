"""Command lines of ``sh``, ``bash`` and ``console`` blocks: each one exists as written.

- ``voicekit ...``: the subcommand exists in the real Typer CLI, every option it is given
  exists for it (with a value when it takes one), no positional argument is left over, and
  a profile it names is shipped, defined in a ``# profiles/NAME.yaml`` block of the docs,
  an existing file, or a placeholder (``NAME``, ``P``). ``a | b | c`` after a voicekit
  command is shorthand: each later part starting with a subcommand of the line's command
  groups, or with an option, is a command of its own (``profiles list | show NAME`` is
  ``profiles list`` and ``profiles show NAME``); any other part is a shell pipe.
- ``make TARGET``: a target of the Makefile; ``pip install 'voicekit[EXTRA,...]'``: extras of
  pyproject.toml; ``python FILE.py`` / ``python -m MODULE``: the file exists and takes the
  options given; ``export NAME=...``: voicekit reads ``NAME``; ``npm install``: packages the
  browser tests pin. Anything else is listed as not checked.
"""

from __future__ import annotations

import functools
import json
import re
import shlex
import shutil
import tomllib
from typing import Any

import typer

from tests.doc_snippets.blocks import ROOT, Block, SnippetError

PLACEHOLDER = re.compile(r"^[A-Z][A-Z_]*$")
FILTERS = {"jq", "grep", "head", "tail", "less", "sort", "wc", "tee"}  # what `voicekit ... | X` may pipe into


@functools.cache
def cli() -> Any:
    """The root command group, as Typer builds it (Typer's own click: commands and groups by duck type)."""
    from voicekit.cli import app

    return typer.main.get_command(app)


def is_group(command: Any) -> bool:
    return hasattr(command, "commands")


def command_lines(block: Block) -> list[list[str]]:
    """The commands of a block as word lists: every line of a script, the ``$ `` lines of a console session."""
    lines = block.body.splitlines()
    if block.language == "console":
        lines = [line[2:] for line in lines if line.startswith("$ ")]
    joined = "\n".join(lines).replace("\\\n", " ")
    commands = []
    for line in joined.splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError as exc:
            raise SnippetError(f"{line.strip()!r}: {exc}") from None
        if words:
            commands.append(words)
    return commands


def check_commands(block: Block, doc_profiles: frozenset[str]) -> str:
    """Every command of the block checked; a line saying what was, or :class:`SnippetError`."""
    checked: list[str] = []
    unchecked: list[str] = []
    problems: list[str] = []
    for words in command_lines(block):
        try:
            note = check_command(words, doc_profiles)
        except SnippetError as exc:
            problems.append(f"{' '.join(words)}: {exc}")
            continue
        (checked if note is None else unchecked).append(note or words[0])
    if problems:
        raise SnippetError("; ".join(problems))
    if not checked and not unchecked:
        return "no commands (output only)"
    text = f"{len(checked)} command(s) exist as written"
    return text + (f"; not checked: {', '.join(unchecked)}" if unchecked else "")


def check_command(words: list[str], doc_profiles: frozenset[str]) -> str | None:
    """``None`` when the command was checked, else a note on why it was not; :class:`SnippetError` if wrong."""
    program = words[0]
    if program == "voicekit":
        for alternative in alternatives(words):
            check_voicekit(alternative, doc_profiles)
        return None
    if program == "make":
        check_make(words[1:])
        return None
    if program == "pip":
        check_pip(words[1:])
        return None
    if program in ("python", "python3") or program.endswith("/python"):
        check_python(words[1:])
        return None
    if program == "export":
        check_export(words[1:])
        return None
    if program == "npm":
        check_npm(words[1:])
        return None
    return program


# --- voicekit --------------------------------------------------------------------------------


def alternatives(words: list[str]) -> list[list[str]]:
    """``voicekit a b | c | --d``: the commands the shorthand stands for (a shell pipe ends it)."""
    parts: list[list[str]] = [[]]
    for word in words:
        if word == "|":
            parts.append([])
        else:
            parts[-1].append(word.strip("[]").removesuffix("..."))
    first, *rest = [part for part in parts if part]
    path = command_path(first)
    expanded = [first]
    for part in rest:
        if part[0].startswith("-"):
            expanded.append(path + part)
            continue
        prefix = next((path[:i] for i in range(len(path), 0, -1) if part[0] in subcommands(path[:i])), None)
        if prefix is not None:
            expanded.append(prefix + part)
        elif part[0] in FILTERS or shutil.which(part[0]):
            break  # a real pipe into another program
        else:
            raise SnippetError(f"{part[0]!r}: no subcommand of {' '.join(path)}, nor a program to pipe into")
    return expanded


def subcommands(path: list[str]) -> set[str]:
    command = cli()
    for name in path[1:]:
        command = command.commands[name]
    return set(command.commands) if is_group(command) else set()


def command_path(words: list[str]) -> list[str]:
    """``["voicekit", "profiles", "show"]`` of ``voicekit profiles show NAME --defaults``."""
    path = ["voicekit"]
    command = cli()
    for word in words[1:]:
        if not is_group(command) or word not in command.commands:
            if not word.startswith("-"):
                break
            continue
        command = command.commands[word]
        path.append(word)
    return path


def check_voicekit(words: list[str], doc_profiles: frozenset[str]) -> None:
    """Parse ``words`` (``voicekit ...``) against the CLI's commands and parameters, running nothing."""
    command = cli()
    name = "voicekit"
    rest = words[1:]
    while True:
        options = {opt: param for param in command.params for opt in (*param.opts, *param.secondary_opts)}
        positional: list[str] = []
        while rest:
            word = rest.pop(0)
            if word == "--help":
                continue
            if not word.startswith("-") or word == "-":
                positional.append(word)
                if is_group(command):
                    break
                continue
            option, has_value, value = word.partition("=")
            param = options.get(option)
            if param is None:
                raise SnippetError(f"{name} has no option {option}")
            takes_value = not getattr(param, "is_flag", False) and not getattr(param, "count", False)
            if takes_value and not has_value:
                if not rest:
                    raise SnippetError(f"{option} needs a value")
                value = rest.pop(0)
            if option in ("--profile", "-p"):
                check_profile_name(value, doc_profiles)
        if is_group(command):
            if not positional:
                return
            sub = command.commands.get(positional[0])
            if sub is None:
                known = ", ".join(sorted(command.commands))
                raise SnippetError(f"{name} has no command {positional[0]!r} (it has {known})")
            command, name = sub, f"{name} {positional[0]}"
            continue
        arguments = [param for param in command.params if param.param_type_name == "argument"]
        if not any(param.nargs == -1 for param in arguments) and len(positional) > sum(p.nargs for p in arguments):
            raise SnippetError(f"{name}: too many arguments {positional}")
        if name in ("voicekit profiles show", "voicekit profiles validate") and positional:
            check_profile_name(positional[0], doc_profiles)
        return


def shipped_profiles() -> set[str]:
    return {path.stem for path in (ROOT / "profiles").glob("*.yaml")}


def check_profile_name(value: str, doc_profiles: frozenset[str]) -> None:
    known = shipped_profiles() | doc_profiles
    if value in known or PLACEHOLDER.match(value) or (ROOT / value).is_file():
        return
    raise SnippetError(f"no profile {value!r}: not shipped, not a file, and no '# profiles/{value}.yaml' block")


# --- other programs ----------------------------------------------------------------------------


def check_make(args: list[str]) -> None:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([\w.-]+):", text, flags=re.M))
    missing = [target for target in args if not target.startswith("-") and target not in targets]
    if missing:
        raise SnippetError(f"no Makefile target {', '.join(missing)} (it has {', '.join(sorted(targets))})")


def extras() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return set(project["optional-dependencies"])


def check_pip(args: list[str]) -> None:
    if not args or args[0] != "install":
        raise SnippetError("only 'pip install' is documented")
    for arg in args[1:]:
        match = re.fullmatch(r"voicekit\[([\w,-]+)\]", arg)
        if match:
            unknown = set(match.group(1).split(",")) - extras()
            if unknown:
                raise SnippetError(f"no extra {', '.join(sorted(unknown))} in pyproject.toml")


def check_python(args: list[str]) -> None:
    if args[:1] == ["-m"]:
        path = ROOT / (args[1].replace(".", "/") + ".py")
        options = args[2:]
    elif args and args[0].endswith(".py"):
        path, options = ROOT / args[0], args[1:]
    elif args[:1] == ["-c"]:
        compile(args[1], "<python -c>", "exec")
        return
    else:
        raise SnippetError("not a script, a module or -c")
    if not path.is_file():
        raise SnippetError(f"no file {path.relative_to(ROOT)}")
    source = path.read_text(encoding="utf-8")
    missing = [opt.split("=")[0] for opt in options if opt.startswith("--") and f'"{opt.split("=")[0]}"' not in source]
    if missing:
        raise SnippetError(f"{path.relative_to(ROOT)} takes no {', '.join(missing)}")


@functools.cache
def voicekit_source() -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in (ROOT / "voicekit").rglob("*.py"))


def check_export(args: list[str]) -> None:
    for arg in args:
        name = arg.split("=", 1)[0]
        if name not in voicekit_source():
            raise SnippetError(f"voicekit reads no variable {name}")


def check_npm(args: list[str]) -> None:
    package = json.loads((ROOT / "tests" / "browser" / "package.json").read_text(encoding="utf-8"))
    pinned = set(package["dependencies"])
    if args[:1] != ["install"]:
        raise SnippetError("only 'npm install' is documented")
    names = [re.sub(r"(?<=.)@[^/@]*$", "", arg) for arg in args[1:] if not arg.startswith("-")]  # no @version
    unknown = [name for name in names if name not in pinned]
    if unknown:
        raise SnippetError(f"not among the packages the browser tests pin (tests/browser/package.json): {unknown}")
