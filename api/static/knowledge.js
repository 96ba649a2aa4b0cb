// An agent's knowledge, on its page: its sources as hookd stored them, adding one (a file, or
// pasted text) and deleting one. How many chunks a run gets (knowledge_top_k) is set in the
// agent's form.

import { api } from "./api.js";
import { $, confirmAction, formatBytes, h, onSignOut, plural, report, showFieldError, time } from "./ui.js";

const ERRORS = ["sources-error", "source-upload-error", "source-paste-error"];

let shownAgent = null; // the agent whose sources are shown, and to which the forms add
onSignOut(() => {
  shownAgent = null; // so the forms are emptied before they are shown again
});

/** Show the agent's knowledge (agents.js calls this with the sources it read with the agent). */
export function showKnowledge(agent, sources) {
  if (shownAgent?.id !== agent.id) {
    // Another agent: what was typed for the last one does not belong here.
    $("source-upload-form").reset();
    $("source-paste-form").reset();
  }
  $("sources-status").textContent = "";
  for (const id of ERRORS) showFieldError(id, "");
  shownAgent = agent;
  const topK = agent.knowledge_top_k;
  $("agent-knowledge-use").textContent =
    topK === 0
      ? "Runs get none of these sources: the agent's excerpts per run is 0. Edit the agent to turn it on."
      : `Each run gets the ${topK === 1 ? "one chunk" : `${topK} chunks`} of these sources that best ${topK === 1 ? "matches" : "match"} its question, numbered so the model can cite them, like [1].`;
  renderSources(sources);
}

function renderSources(sources) {
  $("sources-table").hidden = sources.length === 0;
  $("sources-empty").hidden = sources.length > 0;
  $("sources-table").tBodies[0].replaceChildren(...sources.map(sourceRow));
}

function sourceRow(source) {
  return h(
    "tr",
    { "data-source-id": source.id },
    h("td", { class: "name" }, source.name),
    h("td", {}, source.format),
    h("td", { class: "num" }, String(source.chunks)),
    h("td", { class: "num", title: `${source.bytes.toLocaleString("en")} bytes of UTF-8` }, formatBytes(source.bytes)),
    h("td", { class: "time" }, time(source.created_at)),
    h(
      "td",
      { class: "actions-cell" },
      h(
        "button",
        { type: "button", class: "small danger", "aria-label": `Delete source ${source.name}`, onclick: () => removeSource(shownAgent, source) },
        "Delete",
      ),
    ),
  );
}

/** Read the shown agent's sources again and show them. */
async function refresh(agent) {
  let sources;
  try {
    ({ sources } = await api.listSources(agent.id));
  } catch (error) {
    if (shownAgent?.id === agent.id) report(error, "sources-error");
    return;
  }
  if (shownAgent?.id === agent.id) renderSources(sources);
}

// -- adding and deleting -------------------------------------------------------------------

/** Send a source (a FormData file, or JSON fields); hookd's refusal is shown as it said it. */
async function addSource(body, formId, errorId) {
  const agent = shownAgent;
  if (!agent) return;
  for (const id of ERRORS) showFieldError(id, "");
  const button = $(formId).querySelector("button[type=submit]");
  button.disabled = true;
  $("sources-status").textContent = "Sending it to hookd…";
  let source;
  try {
    source = await api.addSource(agent.id, body);
  } catch (error) {
    if (shownAgent?.id === agent.id) {
      $("sources-status").textContent = "";
      report(error, errorId);
    }
    return;
  } finally {
    button.disabled = false;
  }
  if (shownAgent?.id !== agent.id) return; // the page moved on to another agent meanwhile
  $(formId).reset();
  $("sources-status").textContent = `Added “${source.name}”: ${plural(source.chunks, "chunk")} from ${formatBytes(source.bytes)} of ${source.format}.`;
  await refresh(agent);
}

$("source-upload-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const file = $("source-file").files[0];
  if (!file) {
    showFieldError("source-upload-error", "Choose a file first.");
    return;
  }
  const form = new FormData();
  form.append("file", file); // with its file name: hookd takes the format from its extension
  const name = $("source-file-name").value.trim();
  if (name) form.append("name", name);
  if ($("source-file-format").value) form.append("format", $("source-file-format").value);
  addSource(form, "source-upload-form", "source-upload-error");
});

$("source-paste-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const fields = { name: $("source-paste-name").value.trim(), content: $("source-paste-content").value };
  if ($("source-paste-format").value) fields.format = $("source-paste-format").value;
  addSource(fields, "source-paste-form", "source-paste-error");
});

async function removeSource(agent, source) {
  const sure = await confirmAction(
    `Delete the source “${source.name}”? Its ${plural(source.chunks, "chunk")} go with it: later runs no longer see them.`,
    "Delete",
  );
  if (!sure || shownAgent?.id !== agent.id) return;
  for (const id of ERRORS) showFieldError(id, "");
  try {
    await api.deleteSource(agent.id, source.id);
    $("sources-status").textContent = `Deleted “${source.name}”.`;
  } catch (error) {
    report(error, "sources-error"); // e.g. deleted meanwhile elsewhere: the list below catches up
    if (error.status === 401) return; // signed out
  }
  await refresh(agent);
}
