// The monitor's live dashboard: polls /status and draws each series on a canvas.
// Hand-written so the page works offline and ships no third-party code.
"use strict";

const REFRESH_MS = 2000;
const COLORS = ["#2563eb", "#d97706", "#dc2626"];

function drawChart(canvas, seriesByName) {
  const names = canvas.dataset.series.split(",");
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 34;
  ctx.clearRect(0, 0, w, h);
  const all = names.flatMap((n) => seriesByName[n] || []);
  canvas.dataset.points = String(all.length);
  if (all.length === 0) {
    ctx.fillStyle = "#6b7480";
    ctx.fillText("no data yet", w / 2 - 30, h / 2);
    return;
  }
  const t0 = Math.min(...all.map((p) => p[0])), t1 = Math.max(...all.map((p) => p[0]));
  const vmax = Math.max(...all.map((p) => p[1]), 1e-9);
  const x = (t) => pad + ((t - t0) / Math.max(t1 - t0, 1e-9)) * (w - pad - 8);
  const y = (v) => h - 18 - (v / vmax) * (h - 30);
  ctx.strokeStyle = "#dde1e6";
  ctx.beginPath(); ctx.moveTo(pad, 8); ctx.lineTo(pad, h - 18); ctx.lineTo(w - 8, h - 18); ctx.stroke();
  ctx.fillStyle = "#4a5360";
  ctx.fillText(formatNumber(vmax), 2, 14);
  ctx.fillText("0", 2, h - 18);
  ctx.fillText(`${Math.round(t1 - t0)} s`, w - 40, h - 4);
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
      ctx.fillText(name.replace(/^.*_/, ""), w - 40 * (names.length - i), 14);
    }
  });
}

function formatNumber(v) {
  if (v >= 1000) return v.toFixed(0);
  if (v >= 1) return v.toFixed(2);
  return v.toPrecision(2);
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
    card("p95 latency (1 min)", `${formatNumber(latency.p95)} s`),
    card("error rate", `${report.error_rate_percent.toFixed(1)} %`),
    card("queued", String(report.queue_depths.reduce((a, b) => a + b, 0))),
    card("workers", String(report.workers)),
    card("completed", String(report.completed_total)),
  );
  for (const canvas of document.querySelectorAll("canvas.chart")) drawChart(canvas, status.series);
  fillList("alerts", report.alerts, (a) => {
    const li = document.createElement("li");
    li.className = a.level;
    li.textContent = `${a.level} ${a.metric} = ${formatNumber(a.value)} (threshold ${formatNumber(a.threshold)})`;
    return li;
  });
  fillList("scaling", report.scaling.slice().reverse(), (d) => {
    const li = document.createElement("li");
    li.textContent = `${d.old} → ${d.new}: ${d.reason}`;
    return li;
  });
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
