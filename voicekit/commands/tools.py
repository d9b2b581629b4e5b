"""``voicekit tools``: the tools a profile gives the model."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

app = typer.Typer(help="Tools the language model may call: plugin tools and MCP servers.", no_args_is_help=True)


@app.command("list")
def list_tools(
    profile: Annotated[
        Optional[str],
        typer.Option("--profile", "-p", help="List what this profile gives the model (starts its MCP servers)."),
    ] = None,
    overrides: Annotated[list[str], typer.Option("--set", help="Override a profile value: key=value.")] = [],  # noqa: B006
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON, schemas included.")] = False,
) -> None:
    """List tools with their source (plugin or MCP server) and the schema of their arguments.

    Without --profile: every tool the installed plugins register.
    """
    import asyncio

    rows, broken = asyncio.run(_collect(profile, overrides))
    if json_out:
        import json

        typer.echo(json.dumps({"tools": rows, "broken": broken}, indent=2, ensure_ascii=False))
        return
    _show(rows, broken)


async def _collect(profile: str | None, overrides: list[str]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    from voicekit.tools.registry import load_tool_registry
    from voicekit.tools.toolbox import Toolbox, describe

    registry = load_tool_registry()
    if profile is None:
        tools = [entry.load() for _, entry in sorted(registry.tools.items()) if entry.name not in registry.conflicts]
        return describe(tools), registry.broken
    from voicekit.profiles import merged_document
    from voicekit.tools.config import ToolsConfig, tool_problems

    data = merged_document(profile, overrides)
    problems = tool_problems(data)
    if problems:
        from voicekit.errors import ProfileError

        path, message = problems[0]
        raise ProfileError(f"profile '{profile}': {'.'.join(str(p) for p in path)}: {message}")
    box = Toolbox(ToolsConfig.from_profile(data), registry)
    try:
        await box.start()
        return describe(list(box.tools.values())), registry.broken
    finally:
        await box.aclose()


def _show(rows: list[dict[str, Any]], broken: dict[str, str]) -> None:
    import json

    from rich.console import Console
    from rich.markup import escape
    from rich.text import Text

    console = Console(highlight=False, emoji=False)
    if not rows:
        console.print("no tools")
    for row in rows:
        flags = "" if row["allowed"] else "  [destructive: refused; allow_destructive: true runs it]"
        if row["destructive"] and row["allowed"]:
            flags = "  [destructive: allowed]"
        console.print(Text.assemble((row["name"], "bold"), f"  ({row['source']})", (flags, "yellow")))
        console.print(Text(f"  {row['description']}"))
        console.print(Text(f"  arguments: {json.dumps(row['parameters'], ensure_ascii=False)}", style="dim"))
    for name, error in broken.items():
        console.print(f"[red]broken plugin[/] {escape(name)}: {escape(error)}")
