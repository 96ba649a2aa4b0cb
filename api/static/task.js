// One task: its payload, its answer (with the tool calls, the structured answer and the
// sources it was given) or its error, attempts and timings, and its callback deliveries.
//
// While the task is unfinished, its event stream (Server-Sent Events) says when to read it
// again; where the stream cannot be had, the page polls. Once final, it polls only while a
// callback delivery is still pending.

import { agentLabel, agents, api, loadAgents } from "./api.js";
import {
  $,
  between,
  currentVisit,
  fact,
  formatDuration,
  h,
  isCurrent,
  renderOnce,
  report,
  showView,
  startPolling,
  statusBadge,
  time,
  UNFINISHED,
  WAIT,
  wakeUp,
} from "./ui.js";
import { cancelTask, taskTook } from "./tasks.js";

const STATUSES = ["PENDING", "STARTED", "RETRY", "SUCCESS", "FAILURE"];

let shownTaskId = null;
let stream = null; // the EventSource of the task shown, while it is unfinished
// "none" (not opened yet), "open", "ended" (the final event came: a read is due, then no
// stream is needed again) or "failed" (poll instead)
let streamState = "none";

function closeStream(state = "none") {
  stream?.close();
  stream = null;
  streamState = state;
}

/** Follow the task's events; false when the page must poll instead. */
function followEvents(taskId) {
  if (streamState === "failed" || typeof EventSource !== "function") return false;
  if (streamState !== "none") return true;
  const source = new EventSource(api.taskEventsUrl(taskId));
  stream = source;
  streamState = "open";
  const onEvent = (event) => {
    // Closed on the final event, before hookd ends the stream: EventSource would reconnect.
    if (event.type === "SUCCESS" || event.type === "FAILURE") closeStream("ended");
    wakeUp(); // the event carries the public status; the admin API has the rest
  };
  for (const status of STATUSES) source.addEventListener(status, onEvent);
  source.addEventListener("error", () => {
    if (stream !== source) return;
    // Refused, cut short, or buffered away by a proxy: poll instead, for this task.
    closeStream("failed");
    wakeUp();
  });
  return true;
}

export function taskView(taskId) {
  const visit = currentVisit();
  showView("task", "Task");
  if (shownTaskId !== taskId) {
    shownTaskId = taskId;
    $("task-id").textContent = taskId;
    $("task-status").replaceChildren();
    $("task-facts").replaceChildren();
    renderOnce($("task-tool-calls"), null, () => []);
    renderOnce($("task-sources"), null, () => []);
    renderOnce($("task-deliveries").tBodies[0], null, () => []);
    $("task-payload").textContent = "";
    for (const id of ["task-answer-box", "task-error-box", "task-tools-box", "task-deliveries-box"]) {
      $(id).hidden = true;
    }
    $("task-cancel").hidden = true;
  }
  closeStream();
  startPolling(async () => {
    let task;
    try {
      if (!agents.length) await loadAgents();
      task = await api.getTask(taskId);
    } catch (error) {
      if (isCurrent(visit)) report(error);
      return error.status === 0; // keep trying only while hookd is unreachable
    }
    if (!isCurrent(visit)) return false; // and open no stream for a page left meanwhile
    renderTask(task);
    if (UNFINISHED.has(task.status)) return followEvents(taskId) ? WAIT : true;
    closeStream("ended");
    return task.deliveries.some((delivery) => delivery.status === "pending");
  }, () => closeStream());
}

function renderTask(task) {
  $("task-status").replaceChildren(statusBadge(task.status));
  $("task-cancel").hidden = !UNFINISHED.has(task.status);
  const agent =
    task.agent_id === null
      ? h("span", { class: "muted" }, "(deleted agent)")
      : h("a", { href: `#/agents/${encodeURIComponent(task.agent_id)}` }, agentLabel(task.agent_id));
  const facts = [
    ...fact("Agent", agent),
    ...fact("Attempts", `${task.attempts} of ${task.max_attempts}`),
    ...fact("Created", time(task.created_at)),
    ...fact("Started", time(task.started_at)),
    ...fact("Finished", time(task.finished_at)),
    ...fact("Waited", task.started_at ? formatDuration(between(task.created_at, task.started_at)) : "—"),
    ...fact("Took", taskTook(task)),
  ];
  if (task.status === "RETRY" && task.next_attempt_at) facts.push(...fact("Next attempt", time(task.next_attempt_at)));
  if (task.last_error) {
    facts.push(...fact("Last error", h("span", { class: "tag" }, task.last_error.type), " ", task.last_error.error));
  }
  $("task-facts").replaceChildren(...facts);
  const payload = JSON.stringify(task.payload, null, 2);
  if ($("task-payload").textContent !== payload) $("task-payload").textContent = payload;
  renderResult(task.result);
  renderDeliveries(task.deliveries);
}

function renderResult(result) {
  const answered = Boolean(result && "answer" in result);
  $("task-answer-box").hidden = !answered;
  $("task-error-box").hidden = !(result && "error" in result);
  if (answered) {
    const structured = "structured" in result;
    $("task-answer-title").textContent = structured ? "Structured answer" : "Answer";
    $("task-answer").hidden = structured;
    $("task-structured").hidden = !structured;
    $("task-structured-help").hidden = !structured;
    if ($("task-answer").textContent !== result.answer) $("task-answer").textContent = result.answer;
    const shape = structured ? JSON.stringify(result.structured, null, 2) : "";
    if ($("task-structured").textContent !== shape) $("task-structured").textContent = shape;
    $("task-model").textContent = result.model;
    $("task-usage").textContent = JSON.stringify(result.usage);
  } else if (result && "error" in result) {
    $("task-error-type").textContent = result.type;
    $("task-error").textContent = result.error;
  }
  renderSources(answered ? result.sources : undefined);
  const calls = result?.tool_calls ?? [];
  $("task-tools-box").hidden = calls.length === 0;
  renderOnce($("task-tool-calls"), JSON.stringify(calls), () => calls.map(toolCallItem));
}

/** The chunks of the agent's sources the model was given (an agent with knowledge only). */
function renderSources(sources) {
  $("task-sources-box").hidden = sources === undefined;
  const used = sources ?? [];
  $("task-sources-none").hidden = used.length > 0;
  $("task-sources-help").hidden = used.length === 0;
  renderOnce($("task-sources"), JSON.stringify(used), () => used.map(sourceItem));
}

function sourceItem(used, index) {
  return h(
    "li",
    { "data-source-id": used.source.id },
    h("span", { class: "cite" }, `[${index + 1}]`),
    " ",
    h("span", { class: "name" }, used.source.name),
    h("span", { class: "muted small" }, ` · chunk ${used.chunk} · score ${Number(used.score.toPrecision(3))}`),
  );
}

function toolCallItem(call, index) {
  const titleId = `tool-call-${index}`;
  return h(
    "li",
    { class: "call", "aria-labelledby": titleId },
    h(
      "div",
      { class: "call-head" },
      h("h3", { id: titleId }, `Step ${call.step}: `, h("code", {}, call.tool)),
      call.error ? h("span", { class: "badge status-failure" }, "error") : null,
      call.replayed
        ? h("span", { class: "tag", title: "Made on an earlier attempt; its journalled output was reused" }, "replayed")
        : null,
      h("span", { class: "muted small push" }, formatDuration(call.duration_s * 1000)),
    ),
    h("p", { class: "label" }, "Arguments"),
    h("pre", { class: "json call-arguments" }, JSON.stringify(call.arguments, null, 2)),
    ...(call.error
      ? [h("p", { class: "label" }, "Error (told to the model)"), h("p", { class: "call-error" }, call.error)]
      : [h("p", { class: "label" }, "Output (its start)"), h("pre", { class: "call-output" }, call.output)]),
  );
}

function deliveryWhen(delivery) {
  if (delivery.status === "delivered") {
    return ["delivered ", time(delivery.delivered_at), ` (${formatDuration(between(delivery.created_at, delivery.delivered_at))} after the result)`];
  }
  if (delivery.status === "pending") {
    return delivery.next_attempt_at ? ["next attempt ", time(delivery.next_attempt_at)] : ["sending…"];
  }
  return [h("span", { class: "muted" }, "no more attempts")];
}

function deliveryRow(delivery) {
  const answer = [];
  if (delivery.last_status_code !== null) answer.push(h("code", {}, `HTTP ${delivery.last_status_code}`));
  if (delivery.last_error) answer.push(answer.length ? " " : "", delivery.last_error);
  return h(
    "tr",
    { "data-delivery-id": delivery.id },
    h("td", {}, h("span", { class: `badge delivery-${delivery.status}` }, delivery.status)),
    h("td", { class: "num" }, String(delivery.attempts)),
    h("td", { class: "delivery-answer" }, ...(answer.length ? answer : ["—"])),
    h("td", { class: "time" }, time(delivery.last_attempt_at)),
    h("td", {}, ...deliveryWhen(delivery)),
    h(
      "td",
      { class: "delivery-url" },
      delivery.url,
      h("div", { class: "muted small mono", title: "Sent as webhook-id on every attempt" }, delivery.id),
    ),
  );
}

function renderDeliveries(deliveries) {
  $("task-deliveries-box").hidden = deliveries.length === 0;
  renderOnce($("task-deliveries").tBodies[0], JSON.stringify(deliveries), () => deliveries.map(deliveryRow));
}

$("task-cancel").addEventListener("click", () => {
  if (shownTaskId) cancelTask(shownTaskId);
});
