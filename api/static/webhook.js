// The webhook URL, shown once after an agent is created or its token replaced, with snippets
// that call it (signing the request when the agent requires a signature).

import { $, copyButtons, currentView } from "./ui.js";

const SECRET_VARIABLE = "WEBHOOK_SECRET";
const shellQuote = (text) => `'${text.replaceAll("'", `'\\''`)}'`;

function curlSnippet(url) {
  return [
    `curl -X POST ${shellQuote(url)} \\`,
    `     -H 'Content-Type: application/json' \\`,
    `     -d '{"question": "Hello!"}'`,
  ].join("\n");
}

// How each signature type signs `body` in Python (see "Securing a webhook" in the README).
const PYTHON_SIGNING = {
  "standard-webhooks": [
    "msg_id, timestamp = f\"msg_{uuid.uuid4().hex}\", str(int(time.time()))",
    'key = base64.b64decode(secret.removeprefix("whsec_"))',
    'digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()',
    "headers = {",
    '    "Content-Type": "application/json",',
    '    "webhook-id": msg_id,',
    '    "webhook-timestamp": timestamp,',
    '    "webhook-signature": "v1," + base64.b64encode(digest).decode(),',
    "}",
  ],
  github: [
    'signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()',
    'headers = {"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={signature}"}',
  ],
};

function pythonSnippet(url, signatureType) {
  const signing = PYTHON_SIGNING[signatureType];
  const lines = signing
    ? [
        "import base64, hashlib, hmac, json, os, time, uuid",
        "import urllib.request",
        "",
        `secret = os.environ[${JSON.stringify(SECRET_VARIABLE)}]  # the agent's signing secret`,
        'body = json.dumps({"question": "Hello!"}).encode()',
        ...signing,
      ]
    : [
        "import json",
        "import urllib.request",
        "",
        'body = json.dumps({"question": "Hello!"}).encode()',
        'headers = {"Content-Type": "application/json"}',
      ];
  // A JSON string is also a valid Python string literal.
  return [
    ...lines,
    "request = urllib.request.Request(",
    `    ${JSON.stringify(url)},`,
    "    data=body,",
    "    headers=headers,",
    ")",
    "with urllib.request.urlopen(request) as response:",
    `    print(json.load(response))  # {'success': True, 'task_id': '…'}`,
  ].join("\n");
}

/** Show the agent's webhook URL once; `secret` is the signing secret just saved, if any. */
export function showWebhook(agent, secret = null) {
  const signatureType = agent.signature?.type ?? null;
  $("webhook-agent").textContent = agent.name;
  $("webhook-url").value = agent.webhook_url;
  $("webhook-signed").hidden = !signatureType;
  $("webhook-signature-type").textContent = signatureType ?? "";
  $("webhook-secret-row").hidden = !secret;
  $("webhook-secret").value = secret ?? "";
  $("curl-box").hidden = Boolean(signatureType); // curl alone cannot sign
  $("curl-snippet").textContent = signatureType ? "" : curlSnippet(agent.webhook_url);
  $("python-snippet").textContent = pythonSnippet(agent.webhook_url, signatureType);
  $("copy-status").textContent = "";
  $("webhook-dialog").showModal();
  $("webhook-url").select();
}

// The secrets are not kept in the page once the dialog is closed.
$("webhook-dialog").addEventListener("close", () => {
  $("webhook-url").value = "";
  $("webhook-secret").value = "";
  $("curl-snippet").textContent = "";
  $("python-snippet").textContent = "";
  $(`view-${currentView}`).querySelector("h1").focus();
});

copyButtons($("webhook-dialog"), "copy-status");
