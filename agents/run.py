"""One agent run: resolve the model, render the messages, call the provider."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from agents.agent import Agent
from agents.knowledge import Search, find_passages, with_sources
from agents.prompt import user_message
from agents.providers import VENDOR_BASE_URLS, ModelConfig, ModelError, complete


@dataclass(frozen=True)
class LLMDefaults:
    """The model for agents that name none (HOOKD_LLM_*)."""

    provider: str
    base_url: str
    model: str
    api_key: str = field(default="", repr=False)


def resolve_model(agent: Agent, defaults: LLMDefaults) -> ModelConfig:
    """The agent's `llm` over the defaults.

    The default API key goes only to the default API root: an agent that names its own
    base_url (or another vendor) brings its own key through `api_key_env`, so a key is
    never sent to a server its owner did not choose.
    """
    llm = agent.llm
    provider = llm.get("provider", defaults.provider)
    if "base_url" in llm:
        base_url = llm["base_url"]
    elif provider == defaults.provider:
        base_url = defaults.base_url
    else:
        base_url = VENDOR_BASE_URLS.get(provider, defaults.base_url)
    if "api_key_env" in llm:
        name = llm["api_key_env"]
        api_key = os.environ.get(name, "")
        if not api_key:
            raise ModelError(
                "config_error",
                f"The agent's llm.api_key_env names {name}, which is not set in hookd's environment.",
                transient=False,
            )
    else:
        api_key = defaults.api_key if base_url == defaults.base_url else ""
    return ModelConfig(
        provider=provider,
        model=llm.get("model", defaults.model),
        base_url=base_url,
        api_key=api_key,
    )


async def run_agent(
    agent: Agent,
    payload_json: str,
    *,
    session: aiohttp.ClientSession,
    defaults: LLMDefaults,
    search: Search | None = None,
) -> dict[str, Any]:
    """Run `agent` on a payload once; the SUCCESS result, or a ModelError."""
    config = resolve_model(agent, defaults)
    payload = json.loads(payload_json)
    user = user_message(payload, agent.input_template)
    passages = await find_passages(agent.id, agent.knowledge_top_k, user, search)
    completion = await complete(session, config, with_sources(agent.prompt, passages), user)
    result: dict[str, Any] = {
        "answer": completion.answer,
        "model": completion.model,
        "usage": completion.usage,
    }
    if passages is not None:  # the agent has sources: say which chunks the model was given
        result["sources"] = [p.to_json() for p in passages]
    return result
