"""MkDocs hook: the reference pages are generated from the code at every build
(``quorum.reference``), so a field, table or command can never be missing from them."""

from __future__ import annotations

from typing import Any

from mkdocs.structure.files import File, Files

from quorum.reference import PAGES


def on_files(files: Files, config: Any) -> Files:
    for path, make in PAGES.items():
        files.append(File.generated(config, path, content=make()))
    return files
