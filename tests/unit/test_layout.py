"""The package layout: the ground floor imports nothing above it, and old import paths keep working."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest

GROUND_FLOOR = (
    "voicekit.errors",
    "voicekit.events",
    "voicekit.roles",
    "voicekit.options",
    "voicekit.clock",
    "voicekit.sdk",
    "voicekit.redaction",
    "voicekit.keys",
    "voicekit.settings",
)
ALLOWED = {"voicekit", "voicekit._moved", *GROUND_FLOOR}


@pytest.mark.parametrize("module", GROUND_FLOOR)
def test_ground_floor_imports_nothing_above_it(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        "print('\\n'.join(sorted(m for m in sys.modules if m == 'voicekit' or m.startswith('voicekit.'))))"
    )
    loaded = set(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    )
    assert loaded <= ALLOWED, f"{module} pulls in {sorted(loaded - ALLOWED)}"


@pytest.mark.parametrize(
    ("old", "name", "new"),
    [
        ("voicekit.pipeline", "Conversation", "voicekit.engine.conversation"),
        ("voicekit.runner", "run_conversation", "voicekit.engine.runner"),
        ("voicekit.sessions", "RemoteSessionManager", "voicekit.ledger.remote"),
        ("voicekit.sessions", "SessionLedger", "voicekit.ledger.ledger"),
        ("voicekit.metrics", "summarize", "voicekit.engine.metrics"),
        ("voicekit.profile_yaml", "Doc", "voicekit.profiles.document"),
    ],
)
def test_old_import_paths_work_and_warn(old: str, name: str, new: str) -> None:
    code = (
        "import warnings\n"
        "warnings.simplefilter('error', DeprecationWarning)\n"
        f"try:\n    import {old}\nexcept DeprecationWarning as w:\n    print('warned:', w)\n"
        "warnings.simplefilter('ignore')\n"
        f"import {old}, {new}\n"
        f"assert {old}.{name} is {new}.{name}\n"
        f"from {old} import {name}\n"
        "print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert f"warned: {old} is deprecated" in out and out.strip().endswith("ok")


def test_realtime_session_is_the_old_name_of_realtime_stream() -> None:
    import voicekit
    from voicekit.roles import RealtimeSession, RealtimeStream

    assert RealtimeSession is RealtimeStream and voicekit.RealtimeSession is RealtimeStream


def test_context_extras_is_deprecated_but_works(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from voicekit.roles import BackendContext

    context = BackendContext(record_dir=tmp_path, fast=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert context.extras == {"record_dir": tmp_path, "fast": True}
    assert any(issubclass(w.category, DeprecationWarning) for w in caught)
