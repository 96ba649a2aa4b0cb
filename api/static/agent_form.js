// The agent form: create an agent, or edit one and send only what changed.

import { api } from "./api.js";
import { $, copyText, currentVisit, go, isCurrent, report, showFieldError, showView } from "./ui.js";
import { showWebhook } from "./webhook.js";

// Fields shown as they are, in one input each.
const FORM_INPUTS = {
  name: "agent-name",
  description: "agent-description",
  prompt: "agent-prompt",
  input_template: "agent-template",
  provider: "agent-provider",
  model: "agent-model",
  base_url: "agent-base-url",
  api_key_env: "agent-key-env",
  max_attempts: "agent-attempts",
  timeout_s: "agent-timeout",
  max_concurrency: "agent-concurrency",
  rate_limit: "agent-rate",
  max_steps: "agent-max-steps",
  callback_url: "agent-callback",
  knowledge_top_k: "agent-top-k",
};
// Emptied, these keep the agent's value: they cannot be unset.
const REQUIRED_NUMBERS = new Set(["max_attempts", "timeout_s", "max_steps", "knowledge_top_k"]);
// Lists left empty are not sent when creating: hookd's default is the same empty list.
const LISTS = new Set(["tools", "mcp_servers"]);

let editing = null; // the agent being edited; null while creating

/** A mistake the page can point at before asking hookd. */
class FormError extends Error {
  constructor(message, inputId) {
    super(message);
    this.inputId = inputId;
  }
}

export async function agentFormView(agentId) {
  const visit = currentVisit();
  showView("agent-form", agentId ? "Edit agent" : "New agent");
  showFieldError("agent-form-error", "");
  $("agent-form").reset();
  editing = null;
  showSignatureFields();
  $("agent-form-title").textContent = agentId ? "Edit agent" : "New agent";
  $("agent-save").textContent = agentId ? "Save changes" : "Create agent";
  if (!agentId) return;
  $("agent-save").disabled = true;
  let agent;
  try {
    agent = await api.getAgent(agentId);
  } catch (error) {
    if (isCurrent(visit)) report(error, "agent-form-error");
    return;
  }
  if (!isCurrent(visit)) return; // another form (or view) was opened meanwhile
  editing = agent;
  $("agent-save").disabled = false;
  const values = { ...editing, ...editing.llm };
  for (const [field, id] of Object.entries(FORM_INPUTS)) $(id).value = values[field] ?? "";
  $("agent-tools").value = editing.tools.length ? JSON.stringify(editing.tools, null, 2) : "";
  $("agent-mcp-servers").value = editing.mcp_servers.length ? JSON.stringify(editing.mcp_servers, null, 2) : "";
  $("agent-json-schema").value = editing.json_schema ? JSON.stringify(editing.json_schema, null, 2) : "";
  $("agent-signature-type").value = editing.signature?.type ?? "";
  showSignatureFields();
  $("agent-paused").checked = editing.status === "paused";
  $("agent-form-title").textContent = `Edit “${editing.name}”`;
}

// -- reading the form ----------------------------------------------------------------------

const orNull = (text) => (text.trim() === "" ? null : text);
const numberOrNull = (id) => ($(id).value === "" ? null : Number($(id).value));

/** A JSON textarea's value; `empty` when it is left empty. */
function jsonInput(id, name, empty) {
  const text = $(id).value;
  if (text.trim() === "") return empty;
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new FormError(`'${name}' is not valid JSON (${error.message}); nothing was sent.`, id);
  }
}

/** The form as agent fields; null where the form was left empty. */
function formFields() {
  const text = (field) => $(FORM_INPUTS[field]).value;
  return {
    name: text("name").trim(),
    description: text("description"),
    prompt: text("prompt"),
    input_template: orNull(text("input_template")),
    llm: {
      provider: orNull(text("provider")),
      model: orNull(text("model").trim()),
      base_url: orNull(text("base_url").trim()),
      api_key_env: orNull(text("api_key_env").trim()),
    },
    max_attempts: numberOrNull(FORM_INPUTS.max_attempts),
    timeout_s: numberOrNull(FORM_INPUTS.timeout_s),
    max_concurrency: numberOrNull(FORM_INPUTS.max_concurrency),
    rate_limit: orNull(text("rate_limit").trim()),
    status: $("agent-paused").checked ? "paused" : "active",
    tools: jsonInput("agent-tools", "tools", []),
    mcp_servers: jsonInput("agent-mcp-servers", "mcp_servers", []),
    max_steps: numberOrNull(FORM_INPUTS.max_steps),
    json_schema: jsonInput("agent-json-schema", "json_schema", null),
    callback_url: orNull(text("callback_url").trim()),
    knowledge_top_k: numberOrNull(FORM_INPUTS.knowledge_top_k),
  };
}

/** The `signature` to send: undefined to leave it as it is. */
function signatureField(agent) {
  const type = $("agent-signature-type").value;
  const secret = $("agent-signature-secret").value; // as typed: hookd says if it has stray spaces
  const current = agent?.signature?.type ?? "";
  if (type === "") return current ? null : undefined;
  if (secret.trim()) return { type, secret };
  if (type === current) return undefined; // the saved secret stays
  throw new FormError(
    `Enter the ${type} secret the sender signs with, or generate one.`,
    "agent-signature-secret",
  );
}

/** What to PATCH: only the fields that differ from the agent as loaded. */
function changedFields(agent, fields) {
  const changes = {};
  for (const [field, value] of Object.entries(fields)) {
    if (value === null && REQUIRED_NUMBERS.has(field)) continue;
    if (JSON.stringify(value) !== JSON.stringify(agent[field])) changes[field] = value;
  }
  return changes;
}

$("agent-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  showFieldError("agent-form-error", "");
  let fields, signature;
  try {
    fields = formFields();
    signature = signatureField(editing);
  } catch (error) {
    if (!(error instanceof FormError)) throw error;
    showFieldError("agent-form-error", error.message);
    $(error.inputId).focus();
    return;
  }
  const button = $("agent-save");
  button.disabled = true;
  try {
    if (editing) {
      const changes = changedFields(editing, fields);
      if (signature !== undefined) changes.signature = signature;
      if (Object.keys(changes).length) await api.updateAgent(editing.id, changes);
      go("#/agents", Object.keys(changes).length ? `Saved “${fields.name}”.` : "Nothing changed.");
    } else {
      const body = Object.fromEntries(
        Object.entries(fields).filter(([field, value]) => value !== null && !(LISTS.has(field) && !value.length)),
      );
      if (signature) body.signature = signature;
      const created = await api.createAgent(body);
      go("#/agents", `Created “${created.name}”.`);
      showWebhook(created, signature?.secret ?? null);
    }
  } catch (error) {
    report(error, "agent-form-error");
  } finally {
    button.disabled = false;
  }
});

// -- the signature's secret ----------------------------------------------------------------

/** A random secret in the shape the type's senders use (as `hookd agents create` makes them). */
function newSecret(type) {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  if (type === "github") return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `whsec_${btoa(String.fromCharCode(...bytes))}`;
}

function showSignatureFields() {
  const type = $("agent-signature-type").value;
  const saved = editing?.signature?.type ?? "";
  $("agent-signature-fields").hidden = type === "";
  $("agent-signature-secret").value = "";
  $("agent-signature-secret").placeholder =
    type !== "" && type === saved
      ? "unchanged: hookd keeps the saved secret (type a new one to replace it)"
      : type === "standard-webhooks"
        ? "whsec_… as the sender shows it, or Generate"
        : "the sender's secret, or Generate";
  $("agent-signature-status").textContent = "";
}

$("agent-signature-type").addEventListener("change", showSignatureFields);

$("agent-signature-generate").addEventListener("click", () => {
  const type = $("agent-signature-type").value;
  $("agent-signature-secret").value = newSecret(type);
  $("agent-signature-secret").select();
  $("agent-signature-status").textContent =
    "Made in this browser. Copy it to the sender now: once saved, hookd never shows it again.";
});

$("agent-signature-copy").addEventListener("click", async () => {
  const input = $("agent-signature-secret");
  const copied = input.value !== "" && (await copyText(input.value, input));
  $("agent-signature-status").textContent = copied
    ? "Copied: signing secret."
    : "Nothing copied: type or generate a secret first.";
});
