// The agents: the list, one agent's page (its signature, callback secret, tools, schema, MCP
// servers and knowledge), and what can be done to one: pause, resume, new webhook URL, new
// callback secret, delete. Its sources are knowledge.js's.

import { agents, api, loadAgents } from "./api.js";
import { showKnowledge } from "./knowledge.js";
import { $, confirmAction, copyText, currentVisit, fact, go, h, isCurrent, plural, report, showView, time } from "./ui.js";
import { showWebhook } from "./webhook.js";

const HIDDEN_SECRET = "•".repeat(24);

function describeModel(llm) {
  const provider = llm.provider ?? "default provider";
  const model = llm.model ?? "default model";
  return llm.provider || llm.model ? `${provider} · ${model}` : "server default";
}

function describeLimits(agent) {
  const parts = [
    `${agent.max_attempts} attempt${agent.max_attempts === 1 ? "" : "s"}`,
    `${agent.timeout_s} s`,
  ];
  if (agent.max_concurrency !== null) parts.push(`${agent.max_concurrency} at once`);
  if (agent.rate_limit !== null) parts.push(agent.rate_limit);
  return parts.join(" · ");
}

/** Small tags for what an agent does beyond a prompt. */
function agentTags(agent) {
  const tags = [];
  if (agent.signature) tags.push(`signed: ${agent.signature.type}`);
  if (agent.callback_url) tags.push("callback");
  if (agent.tools.length) tags.push(plural(agent.tools.length, "tool"));
  if (agent.mcp_servers.length) tags.push(plural(agent.mcp_servers.length, "MCP server"));
  if (agent.json_schema) tags.push("JSON schema");
  return tags.map((text) => h("span", { class: "tag" }, text));
}

const agentHref = (agent) => `#/agents/${encodeURIComponent(agent.id)}`;

// -- the list ------------------------------------------------------------------------------

export async function agentsView() {
  const visit = currentVisit();
  showView("agents", "Agents");
  try {
    await loadAgents();
  } catch (error) {
    if (isCurrent(visit)) report(error);
    return;
  }
  if (isCurrent(visit)) renderAgents();
}

function renderAgents() {
  const back = "#/agents";
  const rows = agents.map((agent) => {
    const paused = agent.status === "paused";
    const label = `agent ${agent.name}`;
    const tags = agentTags(agent);
    return h(
      "tr",
      { "data-agent-id": agent.id },
      h(
        "td",
        {},
        h("div", { class: "name" }, h("a", { href: agentHref(agent) }, agent.name)),
        agent.description ? h("div", { class: "muted small" }, agent.description) : null,
        tags.length ? h("div", { class: "tags" }, ...tags) : null,
      ),
      h("td", {}, h("span", { class: `badge agent-${agent.status}` }, agent.status)),
      h("td", { class: "model" }, describeModel(agent.llm)),
      h("td", { class: "small" }, describeLimits(agent)),
      h("td", { class: "time" }, time(agent.updated_at)),
      h(
        "td",
        { class: "actions-cell" },
        h("a", { class: "button small quiet", href: `#/tasks?agent=${encodeURIComponent(agent.id)}`, "aria-label": `Tasks of ${label}` }, "Tasks"),
        h("a", { class: "button small", href: `${agentHref(agent)}/edit`, "aria-label": `Edit ${label}` }, "Edit"),
        h(
          "button",
          { type: "button", class: "small", "aria-label": `${paused ? "Resume" : "Pause"} ${label}`, onclick: () => setPaused(agent, !paused, back) },
          paused ? "Resume" : "Pause",
        ),
        h("button", { type: "button", class: "small", "aria-label": `New webhook URL for ${label}`, onclick: () => rotateWebhook(agent, back) }, "New URL"),
        h("button", { type: "button", class: "small danger", "aria-label": `Delete ${label}`, onclick: () => removeAgent(agent) }, "Delete"),
      ),
    );
  });
  $("agents-table").tBodies[0].replaceChildren(...rows);
  $("agents-table").hidden = agents.length === 0;
  $("agents-empty").hidden = agents.length > 0;
}

// -- one agent -----------------------------------------------------------------------------

let shownAgent = null;
let callbackSecret = null; // kept out of the page until revealed

export async function agentView(agentId) {
  const visit = currentVisit();
  showView("agent", "Agent");
  if (shownAgent?.id !== agentId) {
    shownAgent = null;
    $("agent-title").textContent = "Agent";
    $("agent-body").hidden = true;
  }
  let agent, sources;
  try {
    [agent, { sources }] = await Promise.all([api.getAgent(agentId), api.listSources(agentId)]);
  } catch (error) {
    if (isCurrent(visit)) report(error);
    return;
  }
  if (!isCurrent(visit)) return;
  shownAgent = agent;
  renderAgent(agent);
  showKnowledge(agent, sources);
}

function renderAgent(agent) {
  const paused = agent.status === "paused";
  const back = agentHref(agent);
  document.title = `${agent.name} · hookd`;
  $("agent-title").textContent = agent.name;
  $("agent-body").hidden = false;
  $("agent-status").replaceChildren(h("span", { class: `badge agent-${agent.status}` }, agent.status));
  $("agent-actions").replaceChildren(
    h("a", { class: "button small quiet", href: `#/tasks?agent=${encodeURIComponent(agent.id)}` }, "Tasks"),
    h("a", { class: "button small", href: `${back}/edit` }, "Edit"),
    h("button", { type: "button", class: "small", onclick: () => setPaused(agent, !paused, back) }, paused ? "Resume" : "Pause"),
    h("button", { type: "button", class: "small danger", onclick: () => removeAgent(agent) }, "Delete"),
  );
  $("agent-about").textContent = agent.description;
  const llm = agent.llm;
  $("agent-facts").replaceChildren(
    ...fact("Id", h("code", {}, agent.id)),
    ...fact("Model", describeModel(llm), llm.base_url ? ` at ${llm.base_url}` : "", llm.api_key_env ? `, key from $${llm.api_key_env}` : ""),
    ...fact("Limits", describeLimits(agent)),
    ...fact("Model turns", `at most ${agent.max_steps} per run`),
    ...fact("Created", time(agent.created_at)),
    ...fact("Changed", time(agent.updated_at)),
  );

  $("agent-signature").replaceChildren(
    ...(agent.signature
      ? ["Requires a ", h("strong", {}, agent.signature.type), " signature on every webhook. hookd never shows its secret again; to change it, edit the agent."]
      : ["Requires no signature: anyone who has the URL can run the agent. Edit the agent to require one."]),
  );

  $("agent-callback-url").replaceChildren(
    ...(agent.callback_url
      ? ["Each final result is POSTed to ", h("code", {}, agent.callback_url), "."]
      : ["No callback URL: results are only polled or streamed. Edit the agent to add one."]),
  );
  callbackSecret = agent.callback_secret;
  showSecret(false);
  $("agent-secret-status").textContent = "";

  $("agent-prompt-text").textContent = agent.prompt || "(none)";
  $("agent-template-box").hidden = agent.input_template === null;
  $("agent-template-text").textContent = agent.input_template ?? "";
  $("agent-tools-text").textContent = agent.tools.length ? JSON.stringify(agent.tools, null, 2) : "(none)";
  $("agent-schema-text").textContent = agent.json_schema ? JSON.stringify(agent.json_schema, null, 2) : "(none: free text)";
  renderMcpServers(agent.mcp_servers);
}

function renderMcpServers(servers) {
  $("agent-mcp-empty").hidden = servers.length > 0;
  $("agent-mcp-table").hidden = servers.length === 0;
  $("agent-mcp-table").tBodies[0].replaceChildren(...servers.map(mcpServerRow));
}

/** A command as one line: arguments with spaces or quotes in JSON quotes, so none is ambiguous. */
const commandLine = (command) => command.map((arg) => (/[\s"'\\]/.test(arg) ? JSON.stringify(arg) : arg)).join(" ");

function mcpServerRow(server) {
  // Names of hookd's variables only: the values are read when a run starts, and `env`'s plain
  // values are the server's settings, shown in the form.
  const secrets = Object.entries((server.command ? server.env_from : server.headers_env) ?? {});
  return h(
    "tr",
    { "data-mcp-server": server.name },
    h("td", { class: "name" }, server.name),
    h(
      "td",
      { class: "mcp-target" },
      h("span", { class: "tag" }, server.command ? "stdio" : "HTTP"),
      " ",
      h("code", {}, server.command ? commandLine(server.command) : server.url),
    ),
    h("td", {}, server.tools ? server.tools.join(", ") : h("span", { class: "muted" }, "all")),
    h(
      "td",
      {},
      ...(secrets.length
        ? secrets.map(([name, variable]) => h("div", {}, h("code", {}, name), " ← ", h("code", {}, `$${variable}`)))
        : ["—"]),
    ),
  );
}

function showSecret(revealed) {
  $("agent-callback-secret").textContent = revealed ? callbackSecret : HIDDEN_SECRET;
  $("agent-callback-secret").classList.toggle("concealed", !revealed);
  $("agent-secret-reveal").textContent = revealed ? "Hide" : "Reveal";
  $("agent-secret-reveal").setAttribute("aria-pressed", String(revealed));
}

$("agent-secret-reveal").addEventListener("click", () => {
  showSecret($("agent-secret-reveal").getAttribute("aria-pressed") !== "true");
});

$("agent-secret-copy").addEventListener("click", async () => {
  const copied = await copyText(callbackSecret);
  $("agent-secret-status").textContent = copied
    ? "Copied: callback secret."
    : "Could not copy: reveal the secret, select it and press Ctrl+C.";
});

$("agent-secret-rotate").addEventListener("click", async () => {
  const agent = shownAgent;
  if (!agent) return;
  const sure = await confirmAction(
    `Give “${agent.name}” a new callback secret? Callbacks from now on are signed with it: receivers that check the old one refuse them until you give them the new one.`,
    "New secret",
  );
  if (!sure) return;
  let changed;
  try {
    changed = await api.rotateCallbackSecret(agent.id);
  } catch (error) {
    report(error);
    return;
  }
  shownAgent = changed;
  renderAgent(changed);
  $("agent-secret-status").textContent = "New callback secret made: give it to your receivers (Reveal or Copy).";
});

$("agent-rotate-webhook").addEventListener("click", () => {
  if (shownAgent) rotateWebhook(shownAgent, agentHref(shownAgent));
});

// -- actions -------------------------------------------------------------------------------

async function setPaused(agent, paused, back) {
  try {
    await api.updateAgent(agent.id, { status: paused ? "paused" : "active" });
  } catch (error) {
    report(error);
    return;
  }
  go(
    back,
    paused
      ? `Paused “${agent.name}”: its webhook now answers 409 and its queued tasks wait.`
      : `Resumed “${agent.name}”.`,
  );
}

async function rotateWebhook(agent, back) {
  const sure = await confirmAction(
    `Give “${agent.name}” a new webhook URL? The current URL stops working at once.`,
    "New URL",
  );
  if (!sure) return;
  let changed;
  try {
    changed = await api.rotateWebhook(agent.id);
  } catch (error) {
    report(error);
    return;
  }
  go(back, `“${agent.name}” has a new webhook URL; the old one no longer works.`);
  showWebhook(changed);
}

async function removeAgent(agent) {
  const sure = await confirmAction(
    `Delete “${agent.name}”? Its unfinished tasks are cancelled; finished results stay readable.`,
    "Delete",
  );
  if (!sure) return;
  let answer;
  try {
    answer = await api.deleteAgent(agent.id);
  } catch (error) {
    report(error);
    return;
  }
  const cancelled = answer.cancelled_tasks;
  go("#/agents", `Deleted “${agent.name}”${cancelled ? ` and cancelled ${cancelled} unfinished task(s)` : ""}.`);
}
