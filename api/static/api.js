// The admin API, as this page uses it: the admin key in sessionStorage, one request function,
// and the agents kept for the names in the task list.

const KEY_STORAGE = "hookd.adminKey";

export const adminKey = () => sessionStorage.getItem(KEY_STORAGE);
export const keepAdminKey = (key) => sessionStorage.setItem(KEY_STORAGE, key);
export const forgetAdminKey = () => sessionStorage.removeItem(KEY_STORAGE);

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export async function request(method, path, body, key = adminKey()) {
  const init = { method, cache: "no-store", headers: {} };
  if (body instanceof FormData) {
    init.body = body; // multipart: the browser sets the Content-Type with its boundary
  } else if (body !== undefined) {
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

const agentPath = (id) => `api/agents/${encodeURIComponent(id)}`;
const taskPath = (id) => `api/tasks/${encodeURIComponent(id)}`;

export const api = {
  listAgents: () => request("GET", "api/agents"),
  getAgent: (id) => request("GET", agentPath(id)),
  createAgent: (fields) => request("POST", "api/agents", fields),
  updateAgent: (id, fields) => request("PATCH", agentPath(id), fields),
  deleteAgent: (id) => request("DELETE", agentPath(id)),
  rotateWebhook: (id) => request("POST", `${agentPath(id)}/webhook`),
  rotateCallbackSecret: (id) => request("POST", `${agentPath(id)}/callback-secret`),
  listSources: (id) => request("GET", `${agentPath(id)}/sources`),
  // A FormData (a file) is sent as multipart/form-data, an object ({name, content, format}) as JSON.
  addSource: (id, source) => request("POST", `${agentPath(id)}/sources`, source),
  deleteSource: (id, sourceId) => request("DELETE", `${agentPath(id)}/sources/${encodeURIComponent(sourceId)}`),
  listTasks: (query) => request("GET", `api/tasks?${new URLSearchParams(query)}`),
  getTask: (id) => request("GET", taskPath(id)), // with its payload and callback deliveries
  cancelTask: (id) => request("POST", `${taskPath(id)}/cancel`),
  // Public, like task_status: the task id is the credential, so EventSource (which cannot
  // send an Authorization header) can follow it.
  taskEventsUrl: (id) => `${taskPath(id)}/events`,
};

// -- agents, kept for names in the task list ----------------------------------------------

export let agents = [];
let agentsById = new Map();

export async function loadAgents() {
  agents = (await api.listAgents()).agents;
  agentsById = new Map(agents.map((agent) => [agent.id, agent]));
  return agents;
}

export function forgetAgents() {
  agents = [];
  agentsById = new Map();
}

export const knownAgent = (agentId) => agentsById.has(agentId);

export function agentLabel(agentId) {
  if (agentId === null) return "(deleted agent)";
  return agentsById.get(agentId)?.name ?? agentId;
}
