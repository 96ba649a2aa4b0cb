// hookd's admin page: a client of the admin API, with the admin key kept in sessionStorage.
//
// Everything that comes from the server or the user is put on the page with textContent
// (or as form values), never parsed as HTML: agent names, payloads and answers are data.

const KEY_STORAGE = "hookd.adminKey";
const POLL_MS = 1500;
const PAGE_SIZE = 50;
const MAX_LIMIT = 500; // the admin API's largest page
const UNFINISHED = new Set(["PENDING", "STARTED", "RETRY"]);
const PAUSED = "Paused while this tab is hidden";

const $ = (id) => document.getElementById(id);

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// -- the admin API -------------------------------------------------------------------------

async function request(method, path, body, key = sessionStorage.getItem(KEY_STORAGE)) {
  const init = { method, cache: "no-store", headers: {} };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    init.headers.Authorization = `Bearer ${key ?? ""}`;
    // Relative, so the page also works behind a proxy that serves hookd under a sub-path.
    response = await fetch(path, init);
  } catch (error) {
    if (error instanceof TypeError && /header/i.test(error.message)) {
      throw new ApiError(0, "The key contains characters that cannot be sent; check it for typos.");
    }
    throw new ApiError(0, "hookd did not answer. Is it running?");
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    // not JSON: described below by its status
  }
  if (!response.ok) {
    const message = data && typeof data.message === "string" ? data.message : `HTTP ${response.status}`;
    throw new ApiError(response.status, message);
  }
  return data;
}

const api = {
  listAgents: () => request("GET", "api/agents"),
  getAgent: (id) => request("GET", `api/agents/${encodeURIComponent(id)}`),
  createAgent: (fields) => request("POST", "api/agents", fields),
  updateAgent: (id, fields) => request("PATCH", `api/agents/${encodeURIComponent(id)}`, fields),
  deleteAgent: (id) => request("DELETE", `api/agents/${encodeURIComponent(id)}`),
  rotateWebhook: (id) => request("POST", `api/agents/${encodeURIComponent(id)}/webhook`),
  listTasks: (query) => request("GET", `api/tasks?${new URLSearchParams(query)}`),
  getTask: (id) => request("GET", `api/tasks/${encodeURIComponent(id)}`),
  cancelTask: (id) => request("POST", `api/tasks/${encodeURIComponent(id)}/cancel`),
};

// -- small helpers -------------------------------------------------------------------------

/** An element with attributes and children; strings become text nodes, never markup. */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") el.className = value;
    else if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  el.append(...children.filter((child) => child !== null && child !== undefined));
  return el;
}

const pad = (n) => String(n).padStart(2, "0");

function formatTime(iso) {
  if (!iso) return "—";
  const t = new Date(iso);
  return (
    `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())} ` +
    `${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())}`
  );
}

function formatDuration(ms) {
  if (!Number.isFinite(ms) || ms < 0) return "—";
  const s = ms / 1000;
  if (s < 10) return `${s.toFixed(2)} s`;
  if (s < 60) return `${s.toFixed(1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

const between = (from, to) => Date.parse(to) - Date.parse(from);

/** What a task took: its run when it ran; how long it has been running or waiting otherwise. */
function taskTook(task) {
  if (task.finished_at) return formatDuration(between(task.started_at ?? task.created_at, task.finished_at));
  if (task.status === "STARTED" && task.started_at) {
    return `running ${formatDuration(Date.now() - Date.parse(task.started_at))}`;
  }
  return "—";
}

function showNotice(text) {
  $("notice").textContent = text ?? "";
}

function showProblem(text) {
  $("problem").textContent = text ?? "";
  $("problem").hidden = !text;
}

function showFieldError(id, text) {
  $(id).textContent = text ?? "";
  $(id).hidden = !text;
}

/** Report an API error: a refused key signs out, anything else is shown as hookd said it. */
function report(error, where = null) {
  if (error instanceof ApiError && error.status === 401) {
    signOut("hookd no longer accepts this admin key; sign in again.");
    return;
  }
  if (!(error instanceof ApiError)) console.error(error);
  const text = error instanceof ApiError ? error.message : `Something went wrong in this page: ${error}`;
  if (where) showFieldError(where, text);
  else showProblem(text);
}

// -- polling: one poller at a time, paused while the tab is hidden -------------------------

let poller = null;

function startPolling(fn) {
  stopPolling();
  poller = { fn, timer: 0, running: false };
  tick(poller);
}

function stopPolling() {
  if (poller) clearTimeout(poller.timer);
  poller = null;
  liveText("");
}

async function tick(p) {
  if (poller !== p || p.running || document.hidden) return;
  clearTimeout(p.timer); // a tick asked for early replaces the one already planned
  p.running = true;
  let again = true;
  try {
    again = (await p.fn()) !== false;
  } catch (error) {
    console.error(error); // a bug in this page: keep polling, the next tick may do better
  } finally {
    p.running = false;
  }
  if (poller === p && !again) poller = null;
  if (poller === p && !document.hidden) p.timer = setTimeout(() => tick(p), POLL_MS);
}

function liveText(text, isError = false) {
  $("tasks-live").textContent = text;
  $("tasks-live").classList.toggle("error", isError);
}

document.addEventListener("visibilitychange", () => {
  if (!poller) return;
  clearTimeout(poller.timer);
  if (document.hidden) liveText(PAUSED);
  else tick(poller);
});

// -- agents, kept for names in the task list ----------------------------------------------

let agents = [];
let agentsById = new Map();

async function loadAgents() {
  agents = (await api.listAgents()).agents;
  agentsById = new Map(agents.map((agent) => [agent.id, agent]));
  return agents;
}

function agentLabel(agentId) {
  if (agentId === null) return "(deleted agent)";
  return agentsById.get(agentId)?.name ?? agentId;
}

// -- views and routing ---------------------------------------------------------------------

const VIEWS = ["sign-in", "tasks", "task", "agents", "agent-form"];
let flash = null; // a notice to show after the next navigation
let currentView = null;

function showView(name, title) {
  for (const view of VIEWS) $(`view-${view}`).hidden = view !== name;
  const signedIn = name !== "sign-in";
  $("nav").hidden = !signedIn;
  $("sign-out").hidden = !signedIn;
  const section = name === "task" ? "tasks" : name === "agent-form" ? "agents" : name;
  for (const link of $("nav").querySelectorAll("a")) {
    if (link.dataset.view === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${title} · hookd`;
  if (currentView !== name) {
    currentView = name;
    const focus = name === "sign-in" ? $("admin-key") : $(`view-${name}`).querySelector("h1");
    focus.focus();
  }
}

/** Go to a route; `notice` is shown once there. */
function go(hash, notice = null) {
  flash = notice;
  if (location.hash === hash) route();
  else location.hash = hash;
}

function route() {
  stopPolling();
  showProblem("");
  showNotice(flash);
  flash = null;
  if (!sessionStorage.getItem(KEY_STORAGE)) {
    showView("sign-in", "Sign in");
    return;
  }
  const [path, query = ""] = location.hash.replace(/^#/, "").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "agents" && parts.length === 1) return agentsView();
  if (parts[0] === "agents" && parts[1] === "new") return agentFormView(null);
  if (parts[0] === "agents" && parts[2] === "edit") return agentFormView(parts[1]);
  if (parts[0] === "tasks" && parts[1]) return taskView(parts[1]);
  return tasksView(new URLSearchParams(query));
}

window.addEventListener("hashchange", route);

// -- sign in and out -----------------------------------------------------------------------

$("sign-in-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const key = $("admin-key").value.trim();
  showFieldError("sign-in-error", "");
  try {
    await request("GET", "api/agents", undefined, key);
  } catch (error) {
    const text = error.status === 401 ? `That key was not accepted. ${error.message}` : error.message;
    showFieldError("sign-in-error", text);
    $("admin-key").select();
    return;
  }
  sessionStorage.setItem(KEY_STORAGE, key);
  $("admin-key").value = "";
  currentView = null;
  route();
});

function signOut(message = "") {
  sessionStorage.removeItem(KEY_STORAGE);
  agents = [];
  agentsById = new Map();
  $("tasks-table").tBodies[0].replaceChildren();
  taskRows.clear();
  showFieldError("sign-in-error", message);
  go("#/", "");
}

$("sign-out").addEventListener("click", () => signOut());

// -- the task list -------------------------------------------------------------------------

const taskRows = new Map(); // task id -> {row, cells}
let taskLimit = PAGE_SIZE;
let taskFilterKey = "";

function fillAgentFilter(selected) {
  const select = $("filter-agent");
  const options = [h("option", { value: "" }, "All agents")];
  for (const agent of agents) options.push(h("option", { value: agent.id }, agent.name));
  if (selected && !agentsById.has(selected)) options.push(h("option", { value: selected }, selected));
  select.replaceChildren(...options);
  select.value = selected;
}

function setTaskFilters() {
  const query = new URLSearchParams();
  if ($("filter-agent").value) query.set("agent", $("filter-agent").value);
  if ($("filter-status").value) query.set("status", $("filter-status").value);
  const hash = query.toString() ? `#/tasks?${query}` : "#/tasks";
  history.replaceState(null, "", hash); // no new history entry per filter change
  tasksView(query, false);
}

$("filter-agent").addEventListener("change", setTaskFilters);
$("filter-status").addEventListener("change", setTaskFilters);
$("task-filters").addEventListener("submit", (event) => event.preventDefault());
$("tasks-more").addEventListener("click", () => {
  taskLimit = Math.min(taskLimit + PAGE_SIZE, MAX_LIMIT);
  if (poller) tick(poller);
});

async function tasksView(query, entering = true) {
  showView("tasks", "Tasks");
  const agentId = query.get("agent") ?? "";
  const status = query.get("status") ?? "";
  if (`${agentId}|${status}` !== taskFilterKey) {
    taskFilterKey = `${agentId}|${status}`;
    taskLimit = PAGE_SIZE;
    $("tasks-table").tBodies[0].replaceChildren();
    taskRows.clear();
  }
  $("filter-status").value = status;
  if (entering || !agents.length) {
    try {
      await loadAgents();
    } catch (error) {
      report(error);
      return;
    }
  }
  fillAgentFilter(agentId);
  startPolling(async () => {
    const params = { limit: String(taskLimit) };
    if (agentId) params.agent_id = agentId;
    if (status) params.status = status;
    let tasks;
    try {
      tasks = (await api.listTasks(params)).tasks;
    } catch (error) {
      if (error.status === 401 || error.status === 400) {
        report(error);
        return false;
      }
      liveText(`Cannot reach hookd: ${error.message} Trying again…`, true);
      return true;
    }
    if (tasks.some((task) => task.agent_id !== null && !agentsById.has(task.agent_id))) {
      await loadAgents().catch(() => {}); // a new agent since: fetch its name; keep going if not
    }
    renderTasks(tasks);
    liveText(document.hidden ? PAUSED : `Live · updated ${formatTime(new Date().toISOString()).slice(11)}`);
    return true;
  });
}

function renderTasks(tasks) {
  const body = $("tasks-table").tBodies[0];
  const seen = new Set();
  tasks.forEach((task, index) => {
    seen.add(task.id);
    let entry = taskRows.get(task.id);
    if (!entry) {
      entry = newTaskRow(task);
      taskRows.set(task.id, entry);
    }
    updateTaskRow(entry, task);
    // Insert without moving rows already in place, so a focused button keeps its focus.
    if (body.children[index] !== entry.row) body.insertBefore(entry.row, body.children[index] ?? null);
  });
  for (const [id, entry] of taskRows) {
    if (!seen.has(id)) {
      entry.row.remove();
      taskRows.delete(id);
    }
  }
  $("tasks-empty").hidden = tasks.length > 0;
  $("tasks-empty").textContent =
    taskFilterKey === "|"
      ? "No tasks yet. Trigger an agent's webhook and its task shows up here."
      : "No tasks match these filters.";
  $("tasks-table").hidden = tasks.length === 0;
  $("tasks-more").hidden = tasks.length < taskLimit || taskLimit >= MAX_LIMIT;
}

function newTaskRow(task) {
  const cells = {
    id: h("td", { class: "mono" }),
    agent: h("td"),
    status: h("td"),
    attempts: h("td", { class: "num" }),
    created: h("td", { class: "time" }),
    took: h("td", { class: "num" }),
    action: h("td", { class: "actions-cell" }),
  };
  const link = h(
    "a",
    { href: `#/tasks/${encodeURIComponent(task.id)}`, title: task.id, "aria-label": `Task ${task.id}` },
    `…${task.id.slice(-12)}`,
  );
  cells.id.append(link);
  const row = h("tr", { "data-task-id": task.id }, ...Object.values(cells));
  return { row, cells, shown: {} };
}

/** Change only the cells whose content changed, so nothing flickers or loses focus. */
function updateTaskRow(entry, task) {
  const { cells, shown } = entry;
  const set = (name, text, build) => {
    if (shown[name] === text) return;
    shown[name] = text;
    cells[name].replaceChildren(...build().filter((child) => child !== null));
  };
  set("agent", agentLabel(task.agent_id), () => [
    task.agent_id === null ? h("span", { class: "muted" }, "(deleted agent)") : agentLabel(task.agent_id),
  ]);
  const errorType = task.result?.type ?? (task.status === "RETRY" ? task.last_error?.type : null);
  set("status", `${task.status}|${errorType}`, () => [
    statusBadge(task.status),
    errorType ? h("span", { class: "tag" }, errorType) : null,
  ]);
  set("attempts", `${task.attempts} / ${task.max_attempts}`, () => [`${task.attempts} / ${task.max_attempts}`]);
  set("created", task.created_at, () => [h("time", { datetime: task.created_at }, formatTime(task.created_at))]);
  const took = taskTook(task);
  set("took", took, () => [took]);
  set("action", String(UNFINISHED.has(task.status)), () =>
    UNFINISHED.has(task.status)
      ? [
          h(
            "button",
            { type: "button", class: "small danger", "aria-label": `Cancel task ${task.id}`, onclick: () => cancelTask(task.id) },
            "Cancel",
          ),
        ]
      : [],
  );
}

function statusBadge(status) {
  return h("span", { class: `badge status-${status.toLowerCase()}` }, status);
}

async function cancelTask(taskId) {
  const sure = await confirmAction(
    `Cancel task ${taskId}? A running run is interrupted; the task ends FAILURE (cancelled).`,
    "Cancel task",
  );
  if (!sure) return;
  try {
    await api.cancelTask(taskId);
    showNotice(`Cancelled task ${taskId}.`);
  } catch (error) {
    report(error); // e.g. 409: it finished meanwhile, and the refresh below shows how
  }
  if (poller) tick(poller);
}

// -- one task ------------------------------------------------------------------------------

let shownTaskId = null;

function taskView(taskId) {
  showView("task", "Task");
  if (shownTaskId !== taskId) {
    shownTaskId = taskId;
    $("task-id").textContent = taskId;
    $("task-status").replaceChildren();
    $("task-facts").replaceChildren();
    $("task-payload").textContent = "";
    $("task-answer-box").hidden = true;
    $("task-error-box").hidden = true;
    $("task-cancel").hidden = true;
  }
  startPolling(async () => {
    let task;
    try {
      if (!agents.length) await loadAgents();
      task = await api.getTask(taskId);
    } catch (error) {
      report(error);
      return error.status === 0; // keep trying only while hookd is unreachable
    }
    renderTask(task);
    return UNFINISHED.has(task.status); // a final task does not change again
  });
}

function fact(term, ...description) {
  return [h("dt", {}, term), h("dd", {}, ...description)];
}

function renderTask(task) {
  $("task-status").replaceChildren(statusBadge(task.status));
  $("task-cancel").hidden = !UNFINISHED.has(task.status);
  const agent =
    task.agent_id === null
      ? h("span", { class: "muted" }, "(deleted agent)")
      : h("a", { href: `#/tasks?agent=${encodeURIComponent(task.agent_id)}` }, agentLabel(task.agent_id));
  const facts = [
    ...fact("Agent", agent),
    ...fact("Attempts", `${task.attempts} of ${task.max_attempts}`),
    ...fact("Created", h("time", { datetime: task.created_at }, formatTime(task.created_at))),
    ...fact("Started", task.started_at ? h("time", { datetime: task.started_at }, formatTime(task.started_at)) : "—"),
    ...fact("Finished", task.finished_at ? h("time", { datetime: task.finished_at }, formatTime(task.finished_at)) : "—"),
    ...fact("Waited", task.started_at ? formatDuration(between(task.created_at, task.started_at)) : "—"),
    ...fact("Took", taskTook(task)),
  ];
  if (task.status === "RETRY" && task.next_attempt_at) {
    facts.push(...fact("Next attempt", formatTime(task.next_attempt_at)));
  }
  if (task.last_error) {
    facts.push(...fact("Last error", h("span", { class: "tag" }, task.last_error.type), " ", task.last_error.error));
  }
  $("task-facts").replaceChildren(...facts);
  const payload = JSON.stringify(task.payload, null, 2);
  if ($("task-payload").textContent !== payload) $("task-payload").textContent = payload;
  const result = task.result;
  $("task-answer-box").hidden = !(result && "answer" in result);
  $("task-error-box").hidden = !(result && "error" in result);
  if (result && "answer" in result) {
    $("task-answer").textContent = result.answer;
    $("task-model").textContent = result.model;
    $("task-usage").textContent = JSON.stringify(result.usage);
  } else if (result && "error" in result) {
    $("task-error-type").textContent = result.type;
    $("task-error").textContent = result.error;
  }
}

$("task-cancel").addEventListener("click", () => {
  if (shownTaskId) cancelTask(shownTaskId);
});

// -- agents --------------------------------------------------------------------------------

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

async function agentsView() {
  showView("agents", "Agents");
  try {
    await loadAgents();
  } catch (error) {
    report(error);
    return;
  }
  renderAgents();
}

function renderAgents() {
  const rows = agents.map((agent) => {
    const paused = agent.status === "paused";
    const label = `agent ${agent.name}`;
    return h(
      "tr",
      { "data-agent-id": agent.id },
      h(
        "td",
        {},
        h("div", { class: "name" }, agent.name),
        agent.description ? h("div", { class: "muted small" }, agent.description) : null,
      ),
      h("td", {}, h("span", { class: `badge agent-${agent.status}` }, agent.status)),
      h("td", {}, describeModel(agent.llm)),
      h("td", { class: "small" }, describeLimits(agent)),
      h("td", { class: "time" }, h("time", { datetime: agent.updated_at }, formatTime(agent.updated_at))),
      h(
        "td",
        { class: "actions-cell" },
        h("a", { class: "button small quiet", href: `#/tasks?agent=${encodeURIComponent(agent.id)}`, "aria-label": `Tasks of ${label}` }, "Tasks"),
        h("a", { class: "button small", href: `#/agents/${encodeURIComponent(agent.id)}/edit`, "aria-label": `Edit ${label}` }, "Edit"),
        h(
          "button",
          { type: "button", class: "small", "aria-label": `${paused ? "Resume" : "Pause"} ${label}`, onclick: () => setPaused(agent, !paused) },
          paused ? "Resume" : "Pause",
        ),
        h("button", { type: "button", class: "small", "aria-label": `New webhook URL for ${label}`, onclick: () => rotate(agent) }, "New URL"),
        h("button", { type: "button", class: "small danger", "aria-label": `Delete ${label}`, onclick: () => removeAgent(agent) }, "Delete"),
      ),
    );
  });
  $("agents-table").tBodies[0].replaceChildren(...rows);
  $("agents-table").hidden = agents.length === 0;
  $("agents-empty").hidden = agents.length > 0;
}

async function setPaused(agent, paused) {
  try {
    await api.updateAgent(agent.id, { status: paused ? "paused" : "active" });
  } catch (error) {
    report(error);
    return;
  }
  go(
    "#/agents",
    paused
      ? `Paused “${agent.name}”: its webhook now answers 409 and its queued tasks wait.`
      : `Resumed “${agent.name}”.`,
  );
}

async function rotate(agent) {
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
  go("#/agents", `“${agent.name}” has a new webhook URL; the old one no longer works.`);
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

// -- the agent form ------------------------------------------------------------------------

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
};
let editing = null; // the agent being edited; null while creating

async function agentFormView(agentId) {
  showView("agent-form", agentId ? "Edit agent" : "New agent");
  showFieldError("agent-form-error", "");
  $("agent-form").reset();
  editing = null;
  $("agent-form-title").textContent = agentId ? "Edit agent" : "New agent";
  $("agent-save").textContent = agentId ? "Save changes" : "Create agent";
  if (!agentId) return;
  $("agent-save").disabled = true;
  try {
    editing = await api.getAgent(agentId);
  } catch (error) {
    report(error, "agent-form-error");
    return;
  }
  $("agent-save").disabled = false;
  const values = { ...editing, ...editing.llm };
  for (const [field, id] of Object.entries(FORM_INPUTS)) $(id).value = values[field] ?? "";
  $("agent-paused").checked = editing.status === "paused";
  $("agent-form-title").textContent = `Edit “${editing.name}”`;
}

const orNull = (text) => (text.trim() === "" ? null : text);
const numberOrNull = (id) => ($(id).value === "" ? null : Number($(id).value));

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
  };
}

/** What to PATCH: only the fields that differ from the agent as loaded. */
function changedFields(agent, fields) {
  const changes = {};
  for (const [field, value] of Object.entries(fields)) {
    // An emptied attempts or timeout box keeps the agent's value: these cannot be unset.
    if (value === null && (field === "max_attempts" || field === "timeout_s")) continue;
    if (JSON.stringify(value) !== JSON.stringify(agent[field])) changes[field] = value;
  }
  return changes;
}

$("agent-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  showFieldError("agent-form-error", "");
  const fields = formFields();
  const button = $("agent-save");
  button.disabled = true;
  try {
    if (editing) {
      const changes = changedFields(editing, fields);
      if (Object.keys(changes).length) await api.updateAgent(editing.id, changes);
      go("#/agents", Object.keys(changes).length ? `Saved “${fields.name}”.` : "Nothing changed.");
    } else {
      const body = Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== null));
      const created = await api.createAgent(body);
      go("#/agents", `Created “${created.name}”.`);
      showWebhook(created);
    }
  } catch (error) {
    report(error, "agent-form-error");
  } finally {
    button.disabled = false;
  }
});

// -- the webhook URL, shown once -----------------------------------------------------------

const shellQuote = (text) => `'${text.replaceAll("'", `'\\''`)}'`;

function curlSnippet(url) {
  return [
    `curl -X POST ${shellQuote(url)} \\`,
    `     -H 'Content-Type: application/json' \\`,
    `     -d '{"question": "Hello!"}'`,
  ].join("\n");
}

function pythonSnippet(url) {
  // A JSON string is also a valid Python string literal.
  return [
    "import json",
    "import urllib.request",
    "",
    "request = urllib.request.Request(",
    `    ${JSON.stringify(url)},`,
    `    data=json.dumps({"question": "Hello!"}).encode(),`,
    `    headers={"Content-Type": "application/json"},`,
    ")",
    "with urllib.request.urlopen(request) as response:",
    `    print(json.load(response))  # {'success': True, 'task_id': '…'}`,
  ].join("\n");
}

function showWebhook(agent) {
  $("webhook-agent").textContent = agent.name;
  $("webhook-url").value = agent.webhook_url;
  $("curl-snippet").textContent = curlSnippet(agent.webhook_url);
  $("python-snippet").textContent = pythonSnippet(agent.webhook_url);
  $("copy-status").textContent = "";
  $("webhook-dialog").showModal();
  $("webhook-url").select();
}

// The secret is not kept in the page once the dialog is closed.
$("webhook-dialog").addEventListener("close", () => {
  $("webhook-url").value = "";
  $("curl-snippet").textContent = "";
  $("python-snippet").textContent = "";
  $(`view-${currentView}`).querySelector("h1").focus();
});

async function copyText(element) {
  const text = element instanceof HTMLInputElement ? element.value : element.textContent;
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // No clipboard API (a plain-http page on another host): copy the selection the old way.
    if (element instanceof HTMLInputElement) element.select();
    else window.getSelection().selectAllChildren(element);
    return document.execCommand("copy");
  }
}

for (const button of document.querySelectorAll("[data-copy]")) {
  button.addEventListener("click", async () => {
    const copied = await copyText($(button.dataset.copy));
    $("copy-status").textContent = copied
      ? `Copied: ${button.textContent.replace(/^Copy /, "")}.`
      : "Could not copy: select the text and press Ctrl+C.";
  });
}

// -- confirmations -------------------------------------------------------------------------

function confirmAction(text, yesLabel) {
  const dialog = $("confirm-dialog");
  if (dialog.open) return Promise.resolve(false); // one question at a time
  $("confirm-text").textContent = text;
  $("confirm-yes").textContent = yesLabel;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true });
    dialog.showModal();
  });
}

route();
