"""Every agent type has a template in scenarios/templates/, and every template runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from sim.agents.base import describe_agent, registered_agents
from sim.config import load_scenario, parse_scenario
from sim.runner import run_scenario
from sim.store import DuckDBStore

TEMPLATES = Path(__file__).resolve().parents[2] / "scenarios" / "templates"
NEEDS_A_SERVICE = {"external"}  # loads here; running it needs a decision service


def test_every_registered_agent_has_a_template() -> None:
    assert {p.stem for p in TEMPLATES.glob("*.toml")} == set(registered_agents())


@pytest.mark.parametrize("kind", sorted(registered_agents()))
def test_template_lists_every_parameter_and_runs(kind: str, tmp_path: Path) -> None:
    config = load_scenario(TEMPLATES / f"{kind}.toml")
    (agent,) = config.agents
    assert agent.kind == kind
    assert set(agent.params) <= {p["name"] for p in describe_agent(kind)}
    required = {p["name"] for p in describe_agent(kind) if p["required"]}
    assert required <= set(agent.params)
    if kind in NEEDS_A_SERVICE:
        return
    raw = config.model_dump(mode="json")
    raw["data"][0]["bars"] = 600  # long enough to warm every default window up
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        result = run_scenario(parse_scenario(raw, kind), store)
        status = store.con.execute(
            "SELECT status FROM runs WHERE run_id = ?", [result.run_id]
        ).fetchone()[0]
    assert status == "completed"
