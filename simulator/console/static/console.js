// Sandbank console: the live journal (Server-Sent Events) and the charts (hand-drawn SVG).
// Served by the simulator itself; no library, no network access beyond this origin.
"use strict";

(function () {
  const body = document.body;
  const base = body.dataset.base;
  const SVG = "http://www.w3.org/2000/svg";

  // Forms that ask first (reset), and account pickers that submit on change.
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (ev) => {
      if (!window.confirm(form.dataset.confirm)) ev.preventDefault();
    });
  });
  document.querySelectorAll("select[data-autosubmit]").forEach((sel) => {
    sel.addEventListener("change", () => sel.form.submit());
  });

  // --- live traffic -------------------------------------------------------------------------
  function cell(row, text, cls) {
    const td = document.createElement("td");
    td.textContent = text == null ? "" : String(text);
    if (cls) td.className = cls;
    row.appendChild(td);
  }

  function journalRow(e) {
    const tr = document.createElement("tr");
    tr.dataset.seq = e.seq;
    tr.dataset.status = e.status == null ? "closed" : e.status;
    tr.dataset.operation = e.operation || "";
    if (e.fault) tr.classList.add("faulted");
    if (e.status != null) tr.classList.add("s" + String(e.status)[0]);
    cell(tr, e.seq);
    cell(tr, e.at.replace("T", " ").replace("Z", ""));
    cell(tr, e.account);
    cell(tr, e.method + " " + e.path);
    cell(tr, e.operation);
    cell(tr, e.status == null ? "closed" : e.status, "status");
    cell(tr, e.latency_ms.toFixed(1), "num");
    cell(tr, e.idempotency_key ? e.idempotency_key + " #" + e.attempt + (e.replayed ? " replayed" : "") : "");
    cell(tr, e.fault ? e.fault.effect + " (" + e.fault.rule + (e.fault.preset ? ", " + e.fault.preset : "") + ")" : "", "fault");
    return tr;
  }

  function startTraffic() {
    const form = document.getElementById("traffic-filter");
    const tbody = document.querySelector("#journal tbody");
    const state = document.getElementById("stream-state");
    const MAX_ROWS = 500;
    let source = null;

    function connect() {
      if (source) source.close();
      tbody.textContent = "";
      const params = new URLSearchParams(new FormData(form));
      source = new EventSource(base + "/traffic/stream?" + params.toString());
      source.onopen = () => { state.textContent = "live"; };
      source.onerror = () => { state.textContent = "reconnecting…"; };
      source.onmessage = (msg) => {  // a batch: the entries, oldest first
        const rows = document.createDocumentFragment();
        for (const e of JSON.parse(msg.data)) rows.insertBefore(journalRow(e), rows.firstChild);
        tbody.insertBefore(rows, tbody.firstChild);
        while (tbody.rows.length > MAX_ROWS) tbody.deleteRow(-1);
      };
      source.addEventListener("dropped", (msg) => {
        state.textContent = "live (" + msg.data + " entries dropped: this page fell behind)";
      });
    }
    form.addEventListener("change", connect);
    form.addEventListener("submit", (ev) => { ev.preventDefault(); connect(); });
    window.addEventListener("pagehide", () => source && source.close());
    connect();
  }

  // --- charts -------------------------------------------------------------------------------
  function el(name, attrs, parent) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (parent) parent.appendChild(node);
    return node;
  }

  const COLORS = { "2xx": "#2e7d32", "4xx": "#b26a00", "5xx": "#c62828", faulted: "#8e24aa",
                   p50: "#1f6feb", p95: "#b26a00", p99: "#c62828", backlog: "#00897b" };

  // series: {name: [y or null, ...]} over xs (unix seconds); draws axes and one line each.
  function lineChart(svg, legend, xs, series) {
    svg.textContent = "";
    const W = 600, H = 200, L = 44, R = 8, T = 8, B = 22;
    let max = 0;
    for (const ys of Object.values(series)) for (const y of ys) if (y != null && y > max) max = y;
    max = max > 0 ? max * 1.1 : 1;
    const x0 = xs.length ? xs[0] : 0, x1 = xs.length > 1 ? xs[xs.length - 1] : x0 + 60;
    const px = (x) => L + ((x - x0) / (x1 - x0 || 1)) * (W - L - R);
    const py = (y) => T + (1 - y / max) * (H - T - B);
    el("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#9aa4b1" }, svg);
    el("line", { x1: L, y1: T, x2: L, y2: H - B, stroke: "#9aa4b1" }, svg);
    for (const frac of [0, 0.5, 1]) {
      const v = (max / 1.1) * frac;
      const t = el("text", { x: L - 4, y: py(v) + 4, "text-anchor": "end", "font-size": 10, fill: "#5b6675" }, svg);
      t.textContent = v >= 100 ? Math.round(v) : v.toFixed(v < 10 ? 1 : 0);
    }
    for (const x of [x0, x1]) {
      const t = el("text", { x: px(x), y: H - 6, "text-anchor": x === x0 ? "start" : "end", "font-size": 10, fill: "#5b6675" }, svg);
      t.textContent = new Date(x * 1000).toISOString().slice(11, 16) + "Z";
    }
    legend.textContent = "";
    for (const [name, ys] of Object.entries(series)) {
      let d = "";
      ys.forEach((y, i) => {
        if (y == null) return;
        d += (d && ys[i - 1] != null ? "L" : "M") + px(xs[i]).toFixed(1) + " " + py(y).toFixed(1);
      });
      if (d) el("path", { d: d, fill: "none", stroke: COLORS[name] || "#333", "stroke-width": 2 }, svg);
      ys.forEach((y, i) => {  // a point with no neighbour draws no line: mark it
        if (y != null && ys[i - 1] == null && ys[i + 1] == null) {
          el("circle", { cx: px(xs[i]).toFixed(1), cy: py(y).toFixed(1), r: 3, fill: COLORS[name] || "#333" }, svg);
        }
      });
      const item = document.createElement("span");
      const sw = document.createElement("i");
      sw.className = "sw-" + name;
      item.appendChild(sw);
      item.appendChild(document.createTextNode(name));
      legend.appendChild(item);
    }
  }

  async function refreshCharts() {
    let data;
    try {
      const res = await fetch(base + "/charts.json", { credentials: "same-origin" });
      if (!res.ok) return;
      data = await res.json();
    } catch (err) {
      return;
    }
    if (data.off) return;
    lineChart(document.getElementById("chart-outcomes"), document.getElementById("legend-outcomes"),
              data.minutes, data.outcomes);
    lineChart(document.getElementById("chart-latency"), document.getElementById("legend-latency"),
              data.minutes, data.latency_ms);
    const bx = data.backlog.map((p) => p[0]);
    lineChart(document.getElementById("chart-backlog"), document.getElementById("legend-backlog"),
              bx, { backlog: data.backlog.map((p) => p[1]) });
  }

  if (body.dataset.page === "traffic") startTraffic();
  if (body.dataset.page === "overview" && document.getElementById("chart-outcomes")) {
    refreshCharts();
    setInterval(refreshCharts, 5000);
  }
})();
