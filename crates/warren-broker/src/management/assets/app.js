// Warren broker page: polls the management API every few seconds and draws the
// overview (tiles and a rate chart), queues, RPC calls, connections, channels,
// exchanges and bindings. No dependencies. Data goes into the page as text
// (textContent), never as markup.
"use strict";

const POLL_MS = 5000;
// The page's own URL may carry credentials (http://user:pass@host/), which fetch
// refuses in a relative URL; the origin never carries them. The browser sends the
// Basic auth it used for the page along with each request.
const BASE = location.origin;
let paused = false;
let timer = null;
let polls = 0;

function $(id) { return document.getElementById(id); }

async function api(path) {
  const r = await fetch(BASE + path, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (r.status === 404 && path.startsWith("/api/warren/")) return null; // not Warren
  if (!r.ok) throw new Error(path + ": HTTP " + r.status);
  return r.json();
}

function rate(stats, key) {
  const d = stats && stats[key + "_details"];
  return d ? d.rate : 0;
}

function fmt(n) {
  if (n === null || n === undefined) return "–";
  if (typeof n !== "number") return String(n);
  if (Number.isInteger(n)) return n.toLocaleString("en");
  return n.toLocaleString("en", { maximumFractionDigits: n < 10 ? 2 : 1 });
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

// A table with a caption, column headers (scope=col) and one row per item; the
// first column is a row header. cols: [label, (item) => value, numeric?].
function table(container, caption, cols, rows, empty) {
  const box = $(container);
  box.replaceChildren();
  if (!rows.length) { box.appendChild(el("p", empty, "empty")); return; }
  const t = el("table");
  t.appendChild(el("caption", caption));
  const head = el("thead"), hr = el("tr");
  for (const [label, , num] of cols) {
    const th = el("th", label, num ? "num" : "");
    th.scope = "col";
    hr.appendChild(th);
  }
  head.appendChild(hr);
  t.appendChild(head);
  const body = el("tbody");
  for (const item of rows) {
    const tr = el("tr");
    cols.forEach(([, get, num], i) => {
      const v = get(item);
      const c = el(i === 0 ? "th" : "td", num ? fmt(v) : (v === "" ? "(empty)" : String(v)), num ? "num" : "");
      if (i === 0) c.scope = "row";
      tr.appendChild(c);
    });
    body.appendChild(tr);
  }
  t.appendChild(body);
  box.appendChild(t);
}

function tiles(o, channels) {
  const q = o.queue_totals || {}, ot = o.object_totals || {}, ms = o.message_stats || {};
  const items = [
    ["Connections", ot.connections], ["Channels", channels], ["Queues", ot.queues],
    ["Consumers", ot.consumers], ["Ready", q.messages_ready], ["Unacked", q.messages_unacknowledged],
    ["Publish/s", rate(ms, "publish")], ["Deliver/s", rate(ms, "deliver_get")], ["Ack/s", rate(ms, "ack")],
  ];
  const dl = $("totals");
  dl.replaceChildren();
  for (const [k, v] of items) {
    const d = el("div");
    d.appendChild(el("dt", k));
    d.appendChild(el("dd", fmt(v)));
    dl.appendChild(d);
  }
}

// Rates between consecutive samples of the cumulative totals.
function series(samples) {
  const out = [];
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1], b = samples[i];
    const secs = (b.timestamp - a.timestamp) / 1000;
    if (secs <= 0) continue;
    out.push({
      t: b.timestamp,
      publish: Math.max(0, b.publish - a.publish) / secs,
      deliver: Math.max(0, b.deliver_get - a.deliver_get) / secs,
      ack: Math.max(0, b.ack - a.ack) / secs,
    });
  }
  return out;
}

function niceMax(v) {
  if (v <= 1) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}

function chart(samples) {
  const pts = series(samples || []);
  const box = $("chart");
  const W = 1000, H = 140, L = 48, R = 10, T = 10, B = 22;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img", "aria-labelledby": "chart-title" });
  const last = pts[pts.length - 1];
  // The span covered, counting the interval before the first rate.
  const secs = pts.length ? Math.round((last.t - pts[0].t) / 1000) + 5 : 0;
  const span = secs < 120 ? `${secs} s` : `${Math.round(secs / 60)} min`;
  const summary = last
    ? `Message rates over the last ${span}; latest: publish ${fmt(last.publish)}/s, deliver ${fmt(last.deliver)}/s, ack ${fmt(last.ack)}/s`
    : "Message rates: no samples yet (one every 5 s)";
  root.appendChild(svg("title", { id: "chart-title" }, summary));
  $("chart-caption").textContent = last ? `Message rates, last ${span} (messages/s)` : "Message rates (messages/s)";
  const max = niceMax(Math.max(0, ...pts.map(p => Math.max(p.publish, p.deliver, p.ack))));
  for (const f of [0, 0.5, 1]) {
    const y = T + (H - T - B) * (1 - f);
    root.appendChild(svg("line", { x1: L, x2: W - R, y1: y, y2: y, class: "grid" }));
    root.appendChild(svg("text", { x: L - 6, y: y + 4, "text-anchor": "end" }, fmt(max * f)));
  }
  if (pts.length) {
    const t0 = pts[0].t, span = Math.max(1, last.t - t0);
    const x = t => L + (W - L - R) * (pts.length === 1 ? 1 : (t - t0) / span);
    const y = v => T + (H - T - B) * (1 - v / max);
    for (const k of ["publish", "deliver", "ack"]) {
      root.appendChild(svg("polyline", { class: k, points: pts.map(p => `${x(p.t).toFixed(1)},${y(p[k]).toFixed(1)}`).join(" ") }));
      // The latest reading as a dot, so a single one shows too.
      root.appendChild(svg("circle", { class: k, cx: x(last.t).toFixed(1), cy: y(last[k]).toFixed(1), r: 4 }));
    }
    root.appendChild(svg("text", { x: L, y: H - 6 }, new Date(t0).toLocaleTimeString("en-GB")));
    root.appendChild(svg("text", { x: W - R, y: H - 6, "text-anchor": "end" }, new Date(last.t).toLocaleTimeString("en-GB")));
  }
  box.replaceChildren(root);
}

function client(c) {
  const p = c.client_properties || {};
  return [p.product, p.version].filter(Boolean).join(" ") || "–";
}

function render(d) {
  const o = d.overview;
  $("node").textContent = `${o.node} · ${o.product_name || "RabbitMQ"} ${o.product_version || ""}`;
  tiles(o, d.channels.length);
  chart(o.warren_samples);
  const f = $("filter").value.trim().toLowerCase();
  const queues = d.queues.filter(q => !f || q.name.toLowerCase().includes(f));
  table("queues-table", `${queues.length} of ${d.queues.length} queues`, [
    ["Name", q => q.name], ["Vhost", q => q.vhost],
    ["Ready", q => q.messages_ready, 1], ["Unacked", q => q.messages_unacknowledged, 1],
    ["Consumers", q => q.consumers, 1],
    ["Publish/s", q => rate(q.message_stats, "publish"), 1],
    ["Deliver/s", q => rate(q.message_stats, "deliver_get"), 1],
    ["Ack/s", q => rate(q.message_stats, "ack"), 1],
  ], queues, f ? "No queue matches the filter." : "No queues.");
  const rpc = d.rpc || [];
  if (rpc.length) $("rpc-window").textContent = rpc[0].window_secs;
  table("rpc-table", "Per request queue; latencies in milliseconds", [
    ["Request queue", r => r.queue], ["Calls/s", r => r.calls_per_sec, 1], ["Calls", r => r.calls, 1],
    ["Pending", r => r.pending, 1], ["p50 ms", r => r.p50_ms, 1], ["p90 ms", r => r.p90_ms, 1],
    ["p99 ms", r => r.p99_ms, 1], ["Max ms", r => r.max_ms, 1],
  ], rpc, d.rpc === null ? "This broker does not time RPC calls." : "No RPC calls seen yet.");
  table("connections-table", `${d.connections.length} connections`, [
    ["Name", c => c.name], ["User", c => c.user], ["Vhost", c => c.vhost],
    ["Channels", c => c.channels, 1], ["Client", client],
    ["Connected", c => new Date(c.connected_at).toLocaleTimeString("en-GB")],
  ], d.connections, "No connections.");
  table("channels-table", `${d.channels.length} channels`, [
    ["Name", c => c.name], ["User", c => c.user], ["Consumers", c => c.consumer_count, 1],
    ["Unacked", c => c.messages_unacknowledged, 1], ["Prefetch", c => c.prefetch_count, 1],
    ["Mode", c => (c.confirm ? "confirm" : c.transactional ? "tx" : "–")],
  ], d.channels, "No channels.");
  table("exchanges-table", `${d.exchanges.length} exchanges`, [
    ["Name", x => x.name || "(AMQP default)"], ["Vhost", x => x.vhost], ["Type", x => x.type],
    ["Durable", x => (x.durable ? "yes" : "no")], ["Auto-delete", x => (x.auto_delete ? "yes" : "no")],
    ["Internal", x => (x.internal ? "yes" : "no")],
  ], d.exchanges, "No exchanges.");
  table("bindings-table", `${d.bindings.length} bindings`, [
    ["Source", b => b.source || "(AMQP default)"], ["Destination", b => b.destination],
    ["Type", b => b.destination_type], ["Routing key", b => b.routing_key], ["Vhost", b => b.vhost],
  ], d.bindings, "No bindings.");
}

let last = null;
async function poll() {
  timer = null;
  try {
    const [overview, queues, connections, channels, exchanges, bindings, rpc] = await Promise.all([
      api("/api/overview"), api("/api/queues"), api("/api/connections"), api("/api/channels"),
      api("/api/exchanges"), api("/api/bindings"), api("/api/warren/rpc"),
    ]);
    last = { overview, queues, connections, channels, exchanges, bindings, rpc };
    render(last);
    polls += 1;
    const s = $("status");
    s.className = "";
    s.textContent = `Updated ${new Date().toLocaleTimeString("en-GB")} (every ${POLL_MS / 1000} s)`;
    s.dataset.polls = polls;
  } catch (e) {
    const s = $("status");
    s.className = "error";
    s.textContent = "Cannot read the API: " + e.message;
  }
  if (!paused) timer = setTimeout(poll, POLL_MS);
}

$("pause").addEventListener("click", () => {
  paused = !paused;
  const b = $("pause");
  b.setAttribute("aria-pressed", String(paused));
  b.textContent = paused ? "Resume updates" : "Pause updates";
  if (paused && timer) { clearTimeout(timer); timer = null; }
  if (!paused && !timer) poll();
});
$("filter").addEventListener("input", () => { if (last) render(last); });
poll();
