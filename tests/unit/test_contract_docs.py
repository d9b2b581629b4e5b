"""docs/plugins.md says exactly what each contract checks: its table is the test methods' docstrings, and every
attribute that tunes a contract is documented."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from voicekit.testing.contracts import LLMContract, OutputContract, STTContract
from voicekit.testing.contracts._support import BackendContract

DOC = (Path(__file__).resolve().parents[2] / "docs" / "plugins.md").read_text()
SECTION = DOC.split("## Testing a plugin", 1)[1].split("\n## ", 1)[0]
CONTRACTS = {"all": BackendContract, "STT": STTContract, "LLM": LLMContract, "Output": OutputContract}
ROW = re.compile(r"^\| (\w+) \| `(test_\w+)` \| (.*) \|$", re.M)


def summary(test: object) -> str:
    """The first paragraph of a test's docstring, on one line, in Markdown."""
    first = (inspect.getdoc(test) or "").split("\n\n", 1)[0]
    return re.sub(r"``(.+?)``", r"`\1`", " ".join(first.split()))


def expected_rows() -> list[str]:
    return [
        f"| {label} | `{name}` | {summary(test)} |"
        for label, contract in CONTRACTS.items()
        for name, test in vars(contract).items()
        if name.startswith("test_")
    ]


def test_the_table_is_the_docstrings() -> None:
    documented = [m.group(0) for m in ROW.finditer(SECTION)]
    expected = expected_rows()
    assert documented == expected, (
        "docs/plugins.md, 'Testing a plugin': the table of contract tests is out of date; its rows should read:\n"
        + "\n".join(expected)
    )


def test_every_test_of_every_contract_is_in_the_table() -> None:
    listed = {(label, name) for label, name, _ in ROW.findall(SECTION)}
    for label, contract in CONTRACTS.items():
        base = set() if contract is BackendContract else set(dir(BackendContract))
        names = {n for n in dir(contract) if n.startswith("test_") and n not in base}
        assert names, label
        missing = sorted(n for n in names if (label, n) not in listed)
        assert not missing, f"{label} contract tests not in docs/plugins.md: {missing}"


def test_every_contract_test_has_a_docstring_that_fits_a_table() -> None:
    for label, contract in CONTRACTS.items():
        for name, test in vars(contract).items():
            if name.startswith("test_"):
                text = summary(test)
                assert text, f"{label}: {name} has no docstring"
                assert "|" not in text, f"{label}: the docstring of {name} has a '|', which breaks the table"


def test_every_tuning_attribute_is_documented() -> None:
    for label, contract in CONTRACTS.items():
        attributes = [
            name
            for name, value in vars(contract).items()
            if not name.startswith("_") and name not in {"role", "base"} and not callable(value)
        ]
        for name in attributes:
            assert f"`{name}`" in SECTION or f"`{contract.__name__}.{name}`" in SECTION, (
                f"docs/plugins.md, 'Testing a plugin': {label} attribute {name} is not documented"
            )
