"""``GET /{version}/models`` as the Gemini API answers it, for both Gemini fakes.

Entries have the shape of ``tests/samples/gemini/models_list.json`` (the API reference's
Model resource); pages follow ``pageSize`` and ``pageToken`` like the service.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "gemini" / "models_list.json"


def model_resource(name: str, methods: Sequence[str]) -> dict[str, Any]:
    """One Model resource, shaped after the sample entry of the same kind."""
    sample = json.loads(SAMPLE.read_text())["models"]
    template = next((m for m in sample if "bidiGenerateContent" in methods and "bidi" in str(m)), sample[0])
    title = " ".join(part.capitalize() for part in name.split("-"))
    return {**template, "name": f"models/{name}", "displayName": title, "description": title,
            "supportedGenerationMethods": list(methods)}  # fmt: skip


def list_page(models: Sequence[dict[str, Any]], query: dict[str, str]) -> dict[str, Any]:
    """One page of ``models.list``: ``pageSize`` entries (50 by default) from ``pageToken``."""
    size = max(1, min(int(query.get("pageSize") or 50), 1000))
    start = int(query.get("pageToken") or 0)
    page: dict[str, Any] = {"models": list(models[start : start + size])}
    if start + size < len(models):
        page["nextPageToken"] = str(start + size)
    return page
