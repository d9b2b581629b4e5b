"""``python -m tests.doc_snippets``: every block of the docs with its verdict; exit 1 if one fails."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from tests.doc_snippets import check_all, check_js, listing, verdict


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        results = [
            (block, verdict(check_js, block, Path(tmp) / f"js-{index}") if block.language == "js" else result)
            for index, (block, result) in enumerate(check_all(Path(tmp)))
        ]
    print(listing(results))
    return 0 if all(result.ok for _, result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
