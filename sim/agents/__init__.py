"""Agents: the "what" of the pipeline. Built-ins are registered by name."""

from sim.agents.base import Agent, AgentError, build_agent, register_agent, registered_agents

__all__ = ["Agent", "AgentError", "build_agent", "register_agent", "registered_agents"]
