"""Agents: what an agent is, how its input is rendered, the model providers, and one run."""
