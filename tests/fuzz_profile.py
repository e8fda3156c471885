"""A pytest plugin for bug hunts: more hypothesis examples than the tests ask for.

Load it with ``-p tests.fuzz_profile`` (and no ``CI`` variable, so the draws are fresh):

    FUZZ_EXAMPLES=200 python -m pytest -p tests.fuzz_profile tests/property/...

``FUZZ_EXAMPLES`` replaces every collected hypothesis test's ``max_examples``;
``FUZZ_EXPLICIT=0`` skips the pinned ``@example`` cases (CI runs those). The tests' own
settings are left as they are: the plugin wraps them when the tests are collected.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import Phase, settings


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    examples = int(os.environ.get("FUZZ_EXAMPLES", "0"))
    explicit = os.environ.get("FUZZ_EXPLICIT", "1") != "0"
    for item in items:
        test = getattr(item, "obj", None)
        own = getattr(test, "_hypothesis_internal_use_settings", None)
        if own is None or not hasattr(test, "hypothesis"):
            continue
        changes: dict[str, Any] = {"print_blob": True, "deadline": None}
        if examples:
            changes["max_examples"] = examples
        if not explicit:
            changes["phases"] = [p for p in own.phases if p is not Phase.explicit]
        test._hypothesis_internal_use_settings = settings(own, **changes)
