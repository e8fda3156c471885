// Quorum dashboard: one page, no build step, nothing fetched from elsewhere. It loads the
// current state from the REST endpoints, then follows the live stream (/ws) from the last
// sequence number it saw; when the socket is refused or keeps failing it polls
// /api/events instead. Controls call the same endpoints the console uses.
"use strict";

const TOPICS = ["market:update", "agent:update", "trades:all", "trade:alert", "logs:all",
                "health", "equity", "system:event"];
const state = { key: sessionStorage.getItem("quorumKey") || "", seq: 0, equity: [],
                prices: {}, positions: {}, agents: {}, failures: 0, polling: false };
const $ = (id) => document.getElementById(id);

function toast(text) {
  const el = $("toast");
  el.textContent = text;
  el.classList.add("show");
  setTimeout(() => el.classList.remove("show"), 2500);
}

async function api(path, options = {}) {
  const headers = { "Content-Type": "application/json" };
  if (state.key) headers["X-API-Key"] = state.key;
  const reply = await fetch(path, { ...options, headers });
  if (reply.status === 401) { await askKey(); return api(path, options); }
  const body = await reply.json().catch(() => ({}));
  if (!reply.ok) throw new Error((body.error && body.error.message) || reply.statusText);
  return body;
}

function askKey() {
  return new Promise((resolve) => {
    const dialog = $("key-dialog");
    $("key-form").onsubmit = () => {
      state.key = $("key-input").value.trim();
      sessionStorage.setItem("quorumKey", state.key);
      resolve();
    };
    if (!dialog.open) dialog.showModal();
  });
}

const fmt = (x, digits = 6) => (x === null || x === undefined) ? "" :
  (typeof x === "number" ? Number(x.toPrecision(digits)).toString() : String(x));
const when = (ts) => typeof ts === "number" ? new Date(ts / 1e6).toISOString()
  .replace("T", " ").slice(0, 19) : String(ts || "").replace("T", " ").slice(0, 19);

function li(list, text, cls = "", limit = 200) {
  const item = document.createElement("li");
  item.textContent = text;
  if (cls) item.className = cls;
  list.prepend(item);
  while (list.children.length > limit) list.lastChild.remove();
  return item;
}

// -- panels ---------------------------------------------------------------------------
function showHealth(h) {
  const el = $("health");
  const status = h.status || h.state || "unknown";
  el.className = `banner ${status}`;
  el.dataset.state = status;
  el.textContent = h.component ? `${h.component}: ${status} — ${h.reason || ""}` :
    `${status} · ${h.mode || ""}${h.store ? " · " + h.store : ""}`;
}

function showPrices() {
  const body = $("prices").tBodies[0];
  body.innerHTML = "";
  for (const [symbol, bar] of Object.entries(state.prices).sort()) {
    const row = body.insertRow();
    row.dataset.symbol = symbol;
    row.insertCell().textContent = symbol;
    row.insertCell().textContent = when(bar.ts);
    row.insertCell().textContent = fmt(bar.close);
  }
}

function drawEquity() {
  const canvas = $("equity"), ctx = canvas.getContext("2d");
  if (canvas.clientWidth && canvas.width !== canvas.clientWidth) canvas.width = canvas.clientWidth;
  const points = state.equity;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  $("equity-note").textContent = points.length ?
    `${points.length} points · last ${fmt(points[points.length - 1].equity, 8)}` : "no equity yet";
  canvas.dataset.points = String(points.length);
  if (points.length < 2) return;
  const ys = points.map((p) => p.equity);
  const lo = Math.min(...ys), hi = Math.max(...ys), span = hi - lo || 1;
  const pad = 24, w = canvas.width - 2 * pad, h = canvas.height - 2 * pad;
  ctx.strokeStyle = "#2b6cb0";
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  points.forEach((p, i) => {
    const x = pad + (i / (points.length - 1)) * w, y = pad + h - ((p.equity - lo) / span) * h;
    if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
  });
  ctx.stroke();
  ctx.fillStyle = "#6b7585";
  ctx.fillText(fmt(hi, 8), 2, pad - 6);
  ctx.fillText(fmt(lo, 8), 2, canvas.height - 6);
}

function showPositions() {
  const body = $("positions").tBodies[0];
  body.innerHTML = "";
  for (const [symbol, p] of Object.entries(state.positions).sort()) {
    const row = body.insertRow();
    row.insertCell().textContent = symbol;
    row.insertCell().textContent = fmt(p.quantity);
    row.insertCell().textContent = `${fmt(p.price)} at ${when(p.ts)}`;
  }
}

function showAgents() {
  const body = $("agents").tBodies[0];
  body.innerHTML = "";
  for (const agent of Object.values(state.agents).sort((a, b) => a.name < b.name ? -1 : 1)) {
    const row = body.insertRow();
    row.dataset.agent = agent.name;
    const pick = document.createElement("input");
    pick.type = "checkbox";
    pick.value = agent.name;
    row.insertCell().append(pick);
    row.insertCell().textContent = agent.name;
    const badge = document.createElement("span");
    badge.className = `badge ${agent.state}`;
    badge.textContent = agent.state;
    row.insertCell().append(badge);
    row.insertCell().textContent = agent.kind || "";
    row.insertCell().textContent = (agent.symbols || []).join(", ");
    row.insertCell().textContent = fmt(agent.signals ?? "");
    const cell = row.insertCell();
    for (const action of ["pause", "resume", "stop"]) {
      const button = document.createElement("button");
      button.textContent = action;
      button.dataset.action = action;
      button.onclick = () => command(agent.name, action);
      cell.append(button);
    }
  }
}

async function command(name, action) {
  try {
    const outcome = await api(`/api/agents/${encodeURIComponent(name)}/${action}`,
      { method: "POST", body: JSON.stringify({ reason: "dashboard" }) });
    toast(`${action} ${name}: ${outcome.outcome || "sent"}`);
    await loadAgents();
  } catch (error) { toast(`${action} ${name}: ${error.message}`); }
}

async function batch(action) {
  const names = [...document.querySelectorAll("#agents input:checked")].map((c) => c.value);
  if (!names.length) { toast("select agents first"); return; }
  try {
    const outcome = await api("/api/agents/batch", { method: "POST", body: JSON.stringify(
      { commands: names.map((agent) => ({ command: action, agent })), reason: "dashboard" }) });
    toast(`${action} ${names.join(", ")}: ${outcome.outcome || "sent"}`);
    await loadAgents();
  } catch (error) { toast(`${action}: ${error.message}`); }
}

function showAlert(alert) {
  if (document.querySelector(`#alerts li[data-alert="${alert.alert_id}"]`)) return;
  const item = li($("alerts"), `${when(alert.ts)} ${alert.severity} ${alert.kind}: ` +
    `${alert.message} `, alert.severity);
  item.dataset.alert = alert.alert_id;
  if (alert.acknowledged) { item.classList.add("acked"); return; }
  const button = document.createElement("button");
  button.textContent = "ack";
  button.dataset.action = "ack";
  button.onclick = async () => {
    try {
      await api(`/api/alerts/${alert.alert_id}/ack`, { method: "POST" });
      item.classList.add("acked");
      button.remove();
    } catch (error) { toast(`ack ${alert.alert_id}: ${error.message}`); }
  };
  item.append(button);
}

async function killSwitch() {
  const flatten = $("kill-flatten").checked;
  if (!confirm(`Pull the kill switch${flatten ? " and flatten every position" : ""}?`)) return;
  try {
    const outcome = await api("/api/kill", { method: "POST",
      body: JSON.stringify({ flatten, reason: "dashboard" }) });
    toast(`kill switch: ${outcome.outcome}`);
  } catch (error) { toast(`kill switch: ${error.message}`); }
}

// -- loading --------------------------------------------------------------------------
async function loadAgents() {
  try {
    for (const agent of await api("/api/agents")) state.agents[agent.name] = agent;
    $("agents-note").textContent = "";
  } catch (error) {
    $("agents-note").textContent = `agents: ${error.message}`;
  }
  showAgents();
}

async function load() {
  // Each panel on its own: a run that has not stored anything yet leaves it empty.
  const parts = [
    async () => { const h = await api("/api/health"); showHealth({ ...h, status: h.overall || h.status }); },
    async () => { for (const bar of await api("/api/market")) state.prices[bar.symbol] = bar; },
    async () => { state.equity = await api("/api/equity?limit=2000"); },
    async () => {
      for (const fill of (await api("/api/fills?limit=500")).reverse()) {
        state.positions[fill.symbol] = { quantity: fill.position_after, price: fill.price,
                                         ts: fill.ts };
      }
    },
    async () => { for (const alert of (await api("/api/alerts?limit=50")).reverse()) showAlert(alert); },
    async () => {
      for (const order of (await api("/api/orders?limit=30")).reverse()) {
        li($("trades"), `#${order.order_id} ${order.symbol} ${fmt(order.quantity)} ` +
           `${order.status} @ ${fmt(order.avg_fill_price)}`);
      }
    },
  ];
  for (const part of parts) {
    try { await part(); } catch (error) { console.info("not loaded yet:", error.message); }
  }
  showPrices(); drawEquity(); showPositions();
  await loadAgents();
}

// -- the stream -----------------------------------------------------------------------
function handle(message) {
  if (message.type === "gap") { state.seq = 0; load(); return; }
  state.seq = Math.max(state.seq, message.seq);
  const data = message.data;
  switch (message.topic) {
    case "market:update": state.prices[data.symbol] = data; showPrices(); break;
    case "equity": state.equity.push(data); if (state.equity.length > 5000) state.equity.shift();
      drawEquity(); break;
    case "trades:all": li($("trades"), `#${data.order_id} ${data.symbol} ` +
      `${fmt(data.quantity)} ${data.status} · filled ${fmt(data.filled)}`); break;
    case "trade:alert": showAlert(data); break;
    case "logs:all": logLine(data); break;
    case "health": showHealth(data); break;
    case "agent:update":
      if (data.state && data.agent) {
        state.agents[data.agent] = { ...(state.agents[data.agent] || { name: data.agent }),
                                     state: data.state };
        showAgents();
      }
      break;
    case "system:event":
      if (data.fill) {
        state.positions[data.fill.symbol] = { quantity: data.position, price: data.fill.price,
                                              ts: data.fill.ts };
        showPositions();
      }
      break;
  }
}

function logLine(data) {
  const level = $("log-level").value, agent = $("log-agent").value.trim();
  const text = $("log-text").value.trim().toLowerCase();
  if (level && data.level !== level) return;
  if (agent && data.agent !== agent) return;
  if (text && !String(data.message).toLowerCase().includes(text)) return;
  li($("log"), `${when(data.ts)} ${data.level} ${data.category}` +
     `${data.agent ? " " + data.agent : ""}: ${data.message}`, data.level, 500);
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/ws?key=${encodeURIComponent(state.key)}`);
  ws.onopen = () => {
    state.failures = 0;
    $("link").textContent = "live";
    ws.send(JSON.stringify({ subscribe: TOPICS, since: state.seq, batch: true }));
  };
  ws.onmessage = (event) => event.data.split("\n").forEach((line) => handle(JSON.parse(line)));
  ws.onclose = () => {
    state.failures += 1;
    if (state.failures >= 3) { poll(); return; }
    $("link").textContent = "reconnecting";
    setTimeout(connect, 1000);
  };
}

async function poll() {
  if (state.polling) return;
  state.polling = true;
  $("link").textContent = "polling";
  for (;;) {
    try {
      const found = await api(`/api/events?since=${state.seq}`);
      found.events.forEach(handle);
      state.seq = Math.max(state.seq, found.last_seq);
    } catch (error) {
      $("link").textContent = `polling (${error.message})`;
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

$("kill").onclick = killSwitch;
document.querySelectorAll("[data-batch]").forEach((button) => {
  button.onclick = () => batch(button.dataset.batch);
});
load().finally(connect);
