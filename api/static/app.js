// hookd's admin page: a client of the admin API, with the admin key kept in sessionStorage.
// This module routes between the views; each view lives in its own module:
//
//   api.js         the admin API and the admin key
//   ui.js          elements, formatting, notices, views, the poller, confirmations
//   tasks.js       the task list            task.js        one task
//   agents.js      the agents and one agent agent_form.js  creating and editing one
//   knowledge.js   an agent's sources, on its page
//   webhook.js     the webhook URL, shown once, with snippets

import { adminKey, keepAdminKey, request } from "./api.js";
import { agentFormView } from "./agent_form.js";
import { agentView, agentsView } from "./agents.js";
import { taskView } from "./task.js";
import { tasksView } from "./tasks.js";
import {
  $,
  forgetView,
  newVisit,
  setRouter,
  showFieldError,
  showNotice,
  showProblem,
  showView,
  signOut,
  stopPolling,
  takeFlash,
} from "./ui.js";

function route() {
  newVisit();
  stopPolling();
  showProblem("");
  showNotice(takeFlash());
  if (!adminKey()) {
    showView("sign-in", "Sign in");
    return;
  }
  const [path, query = ""] = location.hash.replace(/^#/, "").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "agents" && parts.length === 1) return agentsView();
  if (parts[0] === "agents" && parts[1] === "new") return agentFormView(null);
  if (parts[0] === "agents" && parts[2] === "edit") return agentFormView(parts[1]);
  if (parts[0] === "agents" && parts.length === 2) return agentView(parts[1]);
  if (parts[0] === "tasks" && parts[1]) return taskView(parts[1]);
  return tasksView(new URLSearchParams(query));
}

setRouter(route);
window.addEventListener("hashchange", route);

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
  keepAdminKey(key);
  $("admin-key").value = "";
  forgetView();
  route();
});

$("sign-out").addEventListener("click", () => signOut());

route();
