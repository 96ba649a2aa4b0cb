// What every view shares: building elements, formatting, notices, views and routes, the
// poller, confirmations and the clipboard.
//
// Everything that comes from the server or the user is put on the page with textContent
// (or as form values), never parsed as HTML: agent names, payloads and answers are data.

import { ApiError, forgetAdminKey, forgetAgents } from "./api.js";

export const POLL_MS = 1500;
export const UNFINISHED = new Set(["PENDING", "STARTED", "RETRY"]);
const PAUSED = "Paused while this tab is hidden";

export const $ = (id) => document.getElementById(id);

/** An element with attributes and children; strings become text nodes, never markup. */
export function h(tag, attrs = {}, ...children) {
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

/** Replace an element's children only when `key` differs from last time, so a reader's
 * selection survives the poller's refreshes. */
const shownKeys = new WeakMap();
export function renderOnce(el, key, build) {
  if (shownKeys.get(el) === key) return;
  shownKeys.set(el, key);
  el.replaceChildren(...build().filter((child) => child !== null && child !== undefined));
}

// -- formatting ----------------------------------------------------------------------------

const pad = (n) => String(n).padStart(2, "0");

export function formatTime(iso) {
  if (!iso) return "—";
  const t = new Date(iso);
  return (
    `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())} ` +
    `${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())}`
  );
}

export function formatDuration(ms) {
  if (!Number.isFinite(ms) || ms < 0) return "—";
  const s = ms / 1000;
  if (s < 10) return `${s.toFixed(2)} s`;
  if (s < 60) return `${s.toFixed(1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

export const between = (from, to) => Date.parse(to) - Date.parse(from);

/** "1 chunk", "12 chunks". */
export const plural = (n, noun) => `${n} ${noun}${n === 1 ? "" : "s"}`;

export function formatBytes(bytes) {
  if (bytes < 1024) return plural(bytes, "byte");
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

export const time = (iso) => (iso ? h("time", { datetime: iso }, formatTime(iso)) : "—");

export function statusBadge(status) {
  return h("span", { class: `badge status-${status.toLowerCase()}` }, status);
}

export function fact(term, ...description) {
  return [h("dt", {}, term), h("dd", {}, ...description)];
}

// -- notices and errors --------------------------------------------------------------------

export function showNotice(text) {
  $("notice").textContent = text ?? "";
}

export function showProblem(text) {
  $("problem").textContent = text ?? "";
  $("problem").hidden = !text;
}

export function showFieldError(id, text) {
  $(id).textContent = text ?? "";
  $(id).hidden = !text;
}

/** Report an API error: a refused key signs out, anything else is shown as hookd said it. */
export function report(error, where = null) {
  if (error instanceof ApiError && error.status === 401) {
    signOut("hookd no longer accepts this admin key; sign in again.");
    return;
  }
  if (!(error instanceof ApiError)) console.error(error);
  const text = error instanceof ApiError ? error.message : `Something went wrong in this page: ${error}`;
  if (where) showFieldError(where, text);
  else showProblem(text);
}

// -- views and routes ----------------------------------------------------------------------

const VIEWS = ["sign-in", "tasks", "task", "agents", "agent", "agent-form"];
const SECTIONS = { task: "tasks", agent: "agents", "agent-form": "agents" };
let router = () => {};
let flash = null; // a notice to show after the next navigation
export let currentView = null;
let visits = 0;

/** Start a visit to a route. A view that awaits something checks afterwards that its visit is
 * still the current one, so an answer arriving after the user moved on cannot take over the
 * page (start a poller, or fill a form with another agent). */
export function newVisit() {
  visits += 1;
  return visits;
}

export const currentVisit = () => visits;
export const isCurrent = (visit) => visit === visits;

export function setRouter(route) {
  router = route;
}

export function takeFlash() {
  const notice = flash;
  flash = null;
  return notice;
}

export function showView(name, title) {
  for (const view of VIEWS) $(`view-${view}`).hidden = view !== name;
  const signedIn = name !== "sign-in";
  $("nav").hidden = !signedIn;
  $("sign-out").hidden = !signedIn;
  const section = SECTIONS[name] ?? name;
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

/** Focus the view's heading again on the next showView (after signing in). */
export function forgetView() {
  currentView = null;
}

/** Go to a route; `notice` is shown once there. */
export function go(hash, notice = null) {
  flash = notice;
  if (location.hash === hash) router();
  else location.hash = hash;
}

const signOutHooks = [];

/** Run `fn` when the page signs out, to drop what it kept of the signed-in views. */
export function onSignOut(fn) {
  signOutHooks.push(fn);
}

export function signOut(message = "") {
  forgetAdminKey();
  forgetAgents();
  for (const fn of signOutHooks) fn();
  showFieldError("sign-in-error", message);
  go("#/", "");
}

// -- polling: one poller at a time, paused while the tab is hidden -------------------------
//
// The poller's function returns false to stop, WAIT to wait for a wakeUp() (an event stream
// says when something changed), anything else to run again in POLL_MS.

export const WAIT = "wait";
let poller = null;

export function startPolling(fn, onStop = () => {}) {
  stopPolling();
  poller = { fn, onStop, timer: 0, running: false, wanted: false };
  tick(poller);
}

export function stopPolling() {
  if (poller) {
    clearTimeout(poller.timer);
    poller.onStop();
  }
  poller = null;
  liveText("");
}

/** Run the poller now (after an action, or when an event says something changed). */
export function wakeUp() {
  if (poller) tick(poller);
}

async function tick(p) {
  if (poller !== p || document.hidden) return;
  if (p.running) {
    p.wanted = true; // run again as soon as this run ends: it may have read too early
    return;
  }
  clearTimeout(p.timer); // a tick asked for early replaces the one already planned
  p.running = true;
  p.wanted = false;
  let next = true;
  try {
    next = await p.fn();
  } catch (error) {
    console.error(error); // a bug in this page: keep polling, the next tick may do better
  } finally {
    p.running = false;
  }
  if (poller !== p) return;
  if (next === false && !p.wanted) {
    poller = null;
    p.onStop();
  } else if (p.wanted) tick(p);
  else if (next !== WAIT && !document.hidden) p.timer = setTimeout(() => tick(p), POLL_MS);
}

export function liveText(text, isError = false) {
  $("tasks-live").textContent = text;
  $("tasks-live").classList.toggle("error", isError);
}

document.addEventListener("visibilitychange", () => {
  if (!poller) return;
  clearTimeout(poller.timer);
  if (document.hidden) liveText(PAUSED);
  else tick(poller);
});

/** Say when the list was last brought up to date (or that it is paused). */
export function liveUpdated() {
  liveText(document.hidden ? PAUSED : `Live · updated ${formatTime(new Date().toISOString()).slice(11)}`);
}

// -- confirmations and the clipboard -------------------------------------------------------

export function confirmAction(text, yesLabel) {
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

/** Copy text to the clipboard; `element` is selected for the old way when there is no API. */
export async function copyText(text, element = null) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // No clipboard API (a plain-http page on another host): copy the selection the old way.
    if (element instanceof HTMLInputElement) element.select();
    else if (element) window.getSelection().selectAllChildren(element);
    else return false;
    return document.execCommand("copy");
  }
}

/** Wire every `[data-copy]` button inside `root` to copy its target and say so in `statusId`. */
export function copyButtons(root, statusId) {
  for (const button of root.querySelectorAll("[data-copy]")) {
    button.addEventListener("click", async () => {
      const element = $(button.dataset.copy);
      const text = element instanceof HTMLInputElement ? element.value : element.textContent;
      const copied = await copyText(text, element);
      $(statusId).textContent = copied
        ? `Copied: ${button.textContent.replace(/^Copy /, "")}.`
        : "Could not copy: select the text and press Ctrl+C.";
    });
  }
}
