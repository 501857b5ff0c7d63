// The monitor's live dashboard: polls /status and draws each series on a canvas.
// Hand-written so the page works offline and ships no third-party code.
"use strict";

const REFRESH_MS = 2000;
const COLORS = ["#2563eb", "#d97706", "#dc2626"];
// Roughly this many intervals on each axis; the step is the nearest 1-2-5 number.
const Y_INTERVALS = 4;
const X_INTERVALS = 5;
// Seconds between x-axis ticks, from which the smallest giving at most X_INTERVALS ticks is chosen.
const TIME_STEPS = [0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200];
const PAD = { left: 58, right: 12, top: 10, bottom: 22 };
// Event markers on the time axis, by kind (the same colours as the legend in index.html).
const EVENT_COLORS = { alert: "#dc2626", scaling: "#7c3aed", restart: "#0d9488" };

// A 1, 2 or 5 times a power of ten, at least `rough`.
function niceStep(rough) {
  const power = Math.pow(10, Math.floor(Math.log10(rough)));
  for (const m of [1, 2, 5, 10]) if (m * power >= rough * (1 - 1e-9)) return m * power;
  return 10 * power;
}

// The y axis for values in [lo, hi]: a 1-2-5 step (at least minStep), from a multiple of it at or
// below lo (and 0) up to one strictly above hi, so that a flat line or the maximum is drawn at its
// value, never on the top edge; except that an axis never passes `ceiling` (100 %) when the data stays within it.
function yAxis(lo, hi, minStep = 0, ceiling = Infinity) {
  lo = Math.min(lo, 0);
  if (hi <= lo) hi = lo + (Math.abs(lo) || 1);
  const step = Math.max(niceStep((hi - lo) / Y_INTERVALS), minStep);
  const bottom = Math.floor(lo / step + 1e-9) * step;
  let top = Math.ceil(hi / step - 1e-9) * step;
  if (top <= hi) top += step;
  if (hi <= ceiling && top > ceiling && Number.isInteger(ceiling / step)) top = ceiling;
  const ticks = [];
  for (let v = bottom; v <= top + step / 2; v += step) ticks.push(Math.abs(v) < step / 1e6 ? 0 : v);
  return { bottom, top, step, ticks };
}

// The unit a chart's values are shown in: latency (kept in seconds) as ms, or µs when the axis stays below 1 ms.
function unitFor(kind, top) {
  if (kind === "seconds") return top <= 0.001 ? { scale: 1e6, suffix: " µs" } : { scale: 1e3, suffix: " ms" };
  if (kind === "percent") return { scale: 1, suffix: " %" };
  if (kind === "rate") return { scale: 1, suffix: "/s" };
  return { scale: 1, suffix: "" };
}

// A tick value with as many decimals as its step needs (a step of 0.5 shows one).
function tickLabel(value, step, unit) {
  const decimals = Math.max(0, -Math.floor(Math.log10(step * unit.scale) + 1e-9));
  return (value * unit.scale).toFixed(decimals) + unit.suffix;
}

function timeLabel(secondsAgo, step) {
  if (secondsAgo === 0) return "now";
  if (step >= 60) return `−${Math.round(secondsAgo / 60)} min`;
  return `−${step < 1 ? secondsAgo.toFixed(1) : Math.round(secondsAgo)} s`;
}

// Dashed vertical lines at the events inside the chart's time span; returns how many were drawn.
function drawEvents(ctx, events, t0, t1, x, h) {
  let drawn = 0;
  ctx.save();
  ctx.setLineDash([3, 3]);
  for (const event of events) {
    if (event.at < t0 || event.at > t1) continue;
    ctx.strokeStyle = EVENT_COLORS[event.kind] || "#6b7480";
    ctx.beginPath(); ctx.moveTo(x(event.at), PAD.top); ctx.lineTo(x(event.at), h - PAD.bottom); ctx.stroke();
    drawn += 1;
  }
  ctx.restore();
  return drawn;
}

function drawChart(canvas, seriesByName, events = []) {
  const names = canvas.dataset.series.split(",");
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  ctx.font = "11px system-ui, sans-serif";
  const all = names.flatMap((n) => seriesByName[n] || []);
  canvas.dataset.points = String(all.length);
  if (all.length === 0) {
    ctx.fillStyle = "#6b7480";
    ctx.fillText("no data yet", w / 2 - 30, h / 2);
    return;
  }
  const t0 = Math.min(...all.map((p) => p[0])), t1 = Math.max(...all.map((p) => p[0]));
  const values = all.map((p) => p[1]);
  const kind = canvas.dataset.unit;
  const minStep = kind === "count" ? 1 : 0;  // workers and queued messages step by whole numbers
  const axis = yAxis(Math.min(...values), Math.max(...values), minStep, kind === "percent" ? 100 : Infinity);
  const unit = unitFor(kind, axis.top);
  const span = Math.max(t1 - t0, 1e-9);
  const plotW = w - PAD.left - PAD.right, plotH = h - PAD.top - PAD.bottom;
  const x = (t) => PAD.left + ((t - t0) / span) * plotW;
  const y = (v) => PAD.top + (1 - (v - axis.bottom) / (axis.top - axis.bottom)) * plotH;

  // Grid and y ticks.
  const yLabels = [];
  ctx.textBaseline = "middle";
  ctx.textAlign = "right";
  for (const v of axis.ticks) {
    ctx.strokeStyle = v === 0 ? "#b8bfc8" : "#eceff3";
    ctx.beginPath(); ctx.moveTo(PAD.left, y(v)); ctx.lineTo(w - PAD.right, y(v)); ctx.stroke();
    const label = tickLabel(v, axis.step, unit);
    yLabels.push(label);
    ctx.fillStyle = "#4a5360";
    ctx.fillText(label, PAD.left - 6, y(v));
  }
  // x ticks: time before the newest point, at a round step.
  const step = TIME_STEPS.find((s) => span / s <= X_INTERVALS) || TIME_STEPS[TIME_STEPS.length - 1];
  const xLabels = [];
  ctx.textBaseline = "alphabetic";
  ctx.textAlign = "center";
  for (let ago = 0; ago <= span + 1e-9; ago += step) {
    const px = x(t1 - ago);
    ctx.strokeStyle = "#b8bfc8";
    ctx.beginPath(); ctx.moveTo(px, h - PAD.bottom); ctx.lineTo(px, h - PAD.bottom + 4); ctx.stroke();
    const label = timeLabel(ago, step);
    xLabels.push(label);
    ctx.fillStyle = "#4a5360";
    ctx.fillText(label, Math.min(px, w - PAD.right - 12), h - 6);
  }
  // What the chart shows, for tests and for reading the DOM.
  canvas.dataset.yTicks = yLabels.join("|");
  canvas.dataset.xTicks = xLabels.reverse().join("|");
  canvas.dataset.yTop = String(axis.top);
  canvas.dataset.yMax = String(Math.max(...values));
  canvas.dataset.events = String(drawEvents(ctx, events, t0, t1, x, h));

  names.forEach((name, i) => {
    const points = seriesByName[name] || [];
    ctx.strokeStyle = COLORS[i % COLORS.length];
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    points.forEach((p, j) => (j ? ctx.lineTo(x(p[0]), y(p[1])) : ctx.moveTo(x(p[0]), y(p[1]))));
    if (points.length === 1) ctx.arc(x(points[0][0]), y(points[0][1]), 2, 0, 2 * Math.PI);
    ctx.stroke();
    if (names.length > 1) {
      ctx.fillStyle = ctx.strokeStyle;
      ctx.textAlign = "right";
      ctx.fillText(name.replace(/^.*_/, ""), w - PAD.right - 36 * (names.length - 1 - i), PAD.top + 8);
    }
  });
}

function formatNumber(v) {
  if (v >= 1000) return v.toFixed(0);
  if (v >= 1) return v.toFixed(2);
  return v.toPrecision(2);
}

// A latency in seconds as a person reads it: ms, or µs below 1 ms.
function formatLatency(seconds) {
  if (seconds < 0.001) return `${formatNumber(seconds * 1e6)} µs`;
  return `${formatNumber(seconds * 1e3)} ms`;
}

function fillList(id, items, render) {
  const list = document.getElementById(id);
  list.replaceChildren();
  if (items.length === 0) {
    const li = document.createElement("li");
    li.className = "none";
    li.textContent = "none";
    list.append(li);
    return;
  }
  for (const item of items) list.append(render(item));
}

function card(label, value) {
  const div = document.createElement("div");
  div.className = "card";
  const b = document.createElement("b");
  b.textContent = value;
  div.append(b, label);
  return div;
}

function render(status) {
  const report = status.report;
  if (!report) return;
  document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()}, uptime ${Math.round(report.uptime)} s`;
  const latency = report.latency[0];
  document.getElementById("summary").replaceChildren(
    card("msg/s (1 min)", formatNumber(report.throughput[0].rate)),
    card("p95 latency (1 min)", formatLatency(latency.p95)),
    card("error rate", `${report.error_rate_percent.toFixed(1)} %`),
    card("queued", String(report.queue_depths.reduce((a, b) => a + b, 0))),
    card("workers", String(report.workers)),
    card("completed", String(report.completed_total)),
  );
  const pipeline = report.pipeline;
  if (pipeline) {
    const sample = pipeline.sample;
    document.getElementById("summary").append(
      card("reply p95 (1 min)", formatLatency(pipeline.reply_latency[0].p95)),
      card("sender queue", String(sample.sender_queued)),
      card("sender error rate", `${pipeline.sender_error_rate_percent.toFixed(1)} %`),
      card("sender retries", String(sample.sender_retries)),
      card("throttle events", String(sample.throttle_events)),
      card("pair-rate holds", String(sample.pair_rate_holds)),
      card("breaker", sample.breaker.replace("_", " ")),
      card("cache hit rate", `${pipeline.cache_hit_rate_percent.toFixed(1)} %`),
      card("Sheets requests saved", String(sample.cache_hits)),
    );
  }
  const engine = report.engine;
  if (engine && engine.journal_bytes) {
    const megabytes = (engine.journal_bytes / 1e6).toFixed(1);
    document.getElementById("summary").append(card("journal backlog", `${engine.journal_pending} / ${megabytes} MB`));
  }
  // Only charts with a series in /status are shown: the pipeline's panels need a runtime that feeds them.
  for (const canvas of document.querySelectorAll("canvas.chart")) {
    const shown = canvas.dataset.series.split(",").some((name) => name in status.series);
    canvas.closest("figure").hidden = !shown && canvas.closest("figure").classList.contains("pipeline");
    drawChart(canvas, status.series, report.events || []);
  }
  renderCluster((report.sources || {}).redis);
  fillList("events", (report.events || []).slice().reverse(), (e) => {
    const li = document.createElement("li");
    li.className = e.kind;
    li.textContent = `${Math.round(report.at - e.at)} s ago: ${e.kind}: ${e.text}`;
    return li;
  });
  fillList("alerts", report.alerts, (a) => {
    const li = document.createElement("li");
    li.className = a.level;
    const show = a.metric.includes("latency") ? formatLatency : formatNumber;  // latency alerts are in seconds
    li.textContent = `${a.level} ${a.metric} = ${show(a.value)} (threshold ${show(a.threshold)})`;
    return li;
  });
  fillList("scaling", report.scaling.slice().reverse(), (d) => {
    const li = document.createElement("li");
    li.textContent = `${d.old} → ${d.new}: ${d.reason}`;
    return li;
  });
}

function fillRows(tableId, rows) {
  const body = document.querySelector(`#${tableId} tbody`);
  body.replaceChildren();
  for (const { cells, className } of rows) {
    const tr = document.createElement("tr");
    if (className) tr.className = className;
    for (const cell of cells) {
      const td = document.createElement("td");
      td.textContent = cell;
      tr.append(td);
    }
    body.append(tr);
  }
}

// Redis mode: every live node and each partition's backlog and lease (the "redis" source of /status).
function renderCluster(cluster) {
  const section = document.getElementById("cluster");
  section.hidden = !cluster || !cluster.nodes;
  if (section.hidden) return;
  const backlog = cluster.partitions.reduce((sum, p) => sum + p.backlog, 0);
  document.getElementById("cluster-summary").textContent =
    `${cluster.nodes.length} node(s), ${backlog} message(s) in the streams, ${cluster.dead_letters} dead letter(s)`;
  fillRows("cluster-nodes", cluster.nodes.map((n) => ({
    cells: [n.node, `${n.heartbeat_age.toFixed(1)} s ago`, n.partitions.join(" "), n.outstanding, n.completed,
      n.dead_lettered, n.refused_acks],
  })));
  fillRows("cluster-partitions", cluster.partitions.map((p) => ({
    cells: [p.partition, p.backlog, p.pending, p.holder || "none", `${p.lease_seconds_left.toFixed(1)} s`],
    className: p.holder ? "" : "unheld",
  })));
}

async function refresh() {
  try {
    const response = await fetch("/status", { cache: "no-store" });
    render(await response.json());
  } catch (error) {
    document.getElementById("updated").textContent = `monitor unreachable (${error})`;
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}

refresh();
