"""Every fenced block of README.md and docs/*.md, checked by its language: docs are code.

Users and plugin authors copy these blocks as they are, so each must be what voicekit does:

- ``python``: compiles, and runs on its own (a fresh interpreter, no keys, a timeout) to exit 0;
- ``yaml``: parses; a profile passes ``voicekit.profiles.check_profile`` (:mod:`.profiles`);
- ``sh``, ``bash``, ``console``: each command exists as written (:mod:`.commands`); a
  console block's ``$ `` lines are the commands, the rest output (stage tables: :mod:`.data`);
- ``json``, ``toml``: parse; bench and metrics documents have voicekit's schema (:mod:`.data`);
- ``js``: bundles with esbuild against the client packages the browser tests pin;
- ``text``: output, diagrams, trees: shown as they are.

A block without a language fails: name it. A block that cannot do what its language's check
asks says so with a marker on the line right before its fence, invisible on GitHub:

- ``<!-- snippet: fragment -->``: python that only compiles (it needs names from elsewhere,
  or a package that is not voicekit's); yaml or json that only parses;
- ``<!-- snippet: signature -->``: python that is a signature, ``name(arg: T) -> R``;
- ``<!-- snippet: alternatives -->``: yaml whose lines are each a snippet of their own;
- ``<!-- snippet: invalid -->``: a yaml profile the text shows failing, which must fail.

``python -m tests.doc_snippets`` prints every block with its verdict.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from tests.doc_snippets.blocks import MARKERS, ROOT, Block, SnippetError, Verdict, all_blocks
from tests.doc_snippets.commands import check_commands
from tests.doc_snippets.data import check_json, check_stage_rows, check_toml
from tests.doc_snippets.profiles import check_yaml, doc_profiles
from tests.doc_snippets.python_blocks import TIMEOUT_S, compile_block, run_block

__all__ = ["ROOT", "Block", "Verdict", "all_blocks", "check_all", "check_block", "check_js", "listing"]

ESBUILD = ROOT / "tests" / "browser" / "node_modules" / ".bin" / "esbuild"


def verdict(check: Callable[..., str], *args: object) -> Verdict:
    try:
        return Verdict(True, check(*args))
    except SnippetError as exc:
        return Verdict(False, str(exc))
    except Exception as exc:  # noqa: BLE001 - voicekit or the check raised: this block fails, the others still run
        return Verdict(False, f"the check raised {type(exc).__name__}: {exc}")


def check_block(block: Block, workdir: Path, doc_profiles: frozenset[str] = frozenset()) -> str:
    """Check one block in-process (python only compiles here; :func:`check_all` runs it)."""
    if block.marker and block.marker not in MARKERS.get(block.language, ()):
        known = ", ".join(sorted(MARKERS.get(block.language, ()))) or "none"
        raise SnippetError(f"marker {block.marker!r} means nothing for ```{block.language} (known: {known})")
    language = block.language
    if language == "python":
        return compile_block(block)
    if language == "yaml":
        return check_yaml(block, workdir)
    if language in ("sh", "bash"):
        return check_commands(block, doc_profiles)
    if language == "console":
        return check_commands(block, doc_profiles) + check_stage_rows(block)
    if language == "json":
        return check_json(block, workdir)
    if language == "toml":
        return check_toml(block)
    if language == "js":
        return "bundled by test_javascript_blocks_bundle (needs the browser tests' esbuild)"
    if language == "text":
        return "text: output, a diagram or a tree, shown as it is"
    if not language:
        raise SnippetError("no language: name it (```text for output and diagrams, ```console for `$ ` sessions)")
    raise SnippetError(f"```{language}: no check knows this language (see tests/doc_snippets/__init__.py)")


def check_all(workdir: Path) -> list[tuple[Block, Verdict]]:
    """Every block with its verdict; python blocks that run do so in parallel with the in-process checks."""
    blocks = all_blocks()
    names = doc_profiles(blocks)
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        runs: dict[int, Future[Verdict]] = {
            index: pool.submit(verdict, run_block, block, workdir / f"run-{index}")
            for index, block in enumerate(blocks)
            if block.language == "python" and not block.marker
        }
        verdicts = {
            index: verdict(check_block, block, workdir / f"check-{index}", names)
            for index, block in enumerate(blocks)
            if index not in runs
        }
        verdicts.update((index, future.result(timeout=TIMEOUT_S * 2)) for index, future in runs.items())
    return [(block, verdicts[index]) for index, block in enumerate(blocks)]


def check_js(block: Block, workdir: Path) -> str:
    """Bundle the block with esbuild: it parses, and its imports are exports of the pinned client packages."""
    if not ESBUILD.exists():
        raise SnippetError("tests/browser/node_modules is missing: run scripts/setup.sh dev (needs npm)")
    workdir.mkdir(parents=True)
    (workdir / "snippet.mjs").write_text(block.body, encoding="utf-8")
    done = subprocess.run(
        [str(ESBUILD), "snippet.mjs", "--bundle", "--format=esm", "--outfile=bundle.js", "--log-level=error"],
        cwd=workdir,
        env={**os.environ, "NODE_PATH": str(ESBUILD.parents[1])},
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        raise SnippetError(" ".join(done.stderr.split()))
    return "bundles against the pinned @pipecat-ai packages"


def listing(results: list[tuple[Block, Verdict]]) -> str:
    """One line per block: where, language, ok or FAILED, the verdict."""
    return "\n".join(
        f"{'ok    ' if v.ok else 'FAILED'} {b.where:<22} {b.language or '(none)':<8}"
        f"{' [' + b.marker + ']' if b.marker else ''} {v.text}"
        for b, v in results
    )
