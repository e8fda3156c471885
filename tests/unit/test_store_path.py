"""Which store a command uses without ``--db`` (quorum.store_path): one per project."""

from __future__ import annotations

from pathlib import Path

from quorum.store_path import default_store


def test_env_wins(tmp_path: Path) -> None:
    (tmp_path / ".quorum").mkdir()
    got = default_store(tmp_path, {"QUORUM_DB": str(tmp_path / "x.duckdb")})
    assert got.path == tmp_path / "x.duckdb" and "QUORUM_DB" in got.why


def test_a_subdirectory_uses_the_projects_store(tmp_path: Path) -> None:
    (tmp_path / ".quorum").mkdir()
    (tmp_path / "research" / "deeper").mkdir(parents=True)
    got = default_store(tmp_path / "research" / "deeper", {})
    assert got.path == tmp_path.resolve() / ".quorum" / "runs.duckdb"


def test_a_store_made_above_is_used_rather_than_forked(tmp_path: Path) -> None:
    (tmp_path / "runs.duckdb").write_bytes(b"")
    (tmp_path / "research").mkdir()
    got = default_store(tmp_path / "research", {})
    assert got.path == tmp_path.resolve() / "runs.duckdb"


def test_the_project_root_is_beside_scenarios(tmp_path: Path) -> None:
    (tmp_path / "scenarios" / "regimes").mkdir(parents=True)
    got = default_store(tmp_path / "scenarios" / "regimes", {})
    assert got.path == tmp_path.resolve() / ".quorum" / "runs.duckdb"
    assert "scenarios" in got.why


def test_no_project_means_here(tmp_path: Path) -> None:
    got = default_store(tmp_path, {})
    assert got.path == tmp_path / "runs.duckdb"


def test_the_nearest_project_store_beats_a_stray_store_below_it(tmp_path: Path) -> None:
    (tmp_path / ".quorum").mkdir()
    (tmp_path / "research").mkdir()
    (tmp_path / "research" / "runs.duckdb").write_bytes(b"")
    got = default_store(tmp_path / "research", {})
    assert got.path == tmp_path.resolve() / ".quorum" / "runs.duckdb"
