// The task list: newest first, filtered by agent and status, refreshed while it is open.

import { agentLabel, agents, api, knownAgent, loadAgents } from "./api.js";
import {
  $,
  between,
  confirmAction,
  currentVisit,
  formatDuration,
  formatTime,
  h,
  isCurrent,
  liveText,
  liveUpdated,
  onSignOut,
  report,
  showNotice,
  showView,
  startPolling,
  statusBadge,
  UNFINISHED,
  wakeUp,
} from "./ui.js";

const PAGE_SIZE = 50;
const MAX_LIMIT = 500; // the admin API's largest page

const taskRows = new Map(); // task id -> {row, cells, shown}
let taskLimit = PAGE_SIZE;
let taskFilterKey = "";

/** What a task took: its run when it ran; how long it has been running or waiting otherwise. */
export function taskTook(task) {
  if (task.finished_at) return formatDuration(between(task.started_at ?? task.created_at, task.finished_at));
  if (task.status === "STARTED" && task.started_at) {
    return `running ${formatDuration(Date.now() - Date.parse(task.started_at))}`;
  }
  return "—";
}

export async function cancelTask(taskId) {
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
  wakeUp();
}

function clearRows() {
  $("tasks-table").tBodies[0].replaceChildren();
  taskRows.clear();
}

onSignOut(clearRows);

function fillAgentFilter(selected) {
  const select = $("filter-agent");
  const options = [h("option", { value: "" }, "All agents")];
  for (const agent of agents) options.push(h("option", { value: agent.id }, agent.name));
  if (selected && !knownAgent(selected)) options.push(h("option", { value: selected }, selected));
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
  wakeUp();
});

export async function tasksView(query, entering = true) {
  const visit = currentVisit();
  showView("tasks", "Tasks");
  const agentId = query.get("agent") ?? "";
  const status = query.get("status") ?? "";
  if (`${agentId}|${status}` !== taskFilterKey) {
    taskFilterKey = `${agentId}|${status}`;
    taskLimit = PAGE_SIZE;
    clearRows();
  }
  $("filter-status").value = status;
  if (entering || !agents.length) {
    try {
      await loadAgents();
    } catch (error) {
      if (isCurrent(visit)) report(error);
      return;
    }
    if (!isCurrent(visit)) return;
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
    if (tasks.some((task) => task.agent_id !== null && !knownAgent(task.agent_id))) {
      await loadAgents().catch(() => {}); // a new agent since: fetch its name; keep going if not
    }
    renderTasks(tasks);
    liveUpdated();
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
            {
              type: "button",
              class: "small danger",
              "aria-label": `Cancel task ${task.id}`,
              onclick: () => cancelTask(task.id),
            },
            "Cancel",
          ),
        ]
      : [],
  );
}
