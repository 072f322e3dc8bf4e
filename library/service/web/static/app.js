// bosun's web page: fills the server-rendered shells from the service's JSON and keeps them
// live by short polling. The token lives in sessionStorage (this tab only) and travels in the
// Authorization header, never in a URL.

const body = document.body;
const PREFIX = body.dataset.prefix;
const BASE = body.dataset.base;
const TOKEN_KEY = "bosun-token";
const $ = (sel) => document.querySelector(sel);

let who = { name: "anonymous", anonymous: true, may_read: true, may_change: false, may_cancel: false };
const onWho = [];

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

async function api(path, options = {}) {
  const headers = { Accept: "application/json", ...(options.headers || {}) };
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  const response = await fetch(PREFIX + path, { ...options, headers, cache: "no-store" });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      const detail = (await response.json()).detail;
      if (Array.isArray(detail) && detail.length) message = detail[0].msg;
    } catch (_) {
      // not JSON: the status line says enough
    }
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  const type = response.headers.get("content-type") || "";
  if (response.status === 204 || response.status === 202) return null;
  return type.includes("json") ? response.json() : response.text();
}

let statusFrom = null;

// An action's message stays until the next action; a poll clears only its own.
function showStatus(message, from = "action") {
  const el = $("#status");
  if (!message && from === "poll" && statusFrom !== "poll") return;
  statusFrom = message ? from : null;
  if (!message) {
    el.hidden = true;
    el.textContent = "";
    return;
  }
  el.textContent = message;
  el.hidden = false;
}

// -- small DOM helpers (text only: nothing from the service is parsed as HTML)

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function cell(value, cls) {
  if (value === null || value === undefined || value === "") return el("td", { class: `${cls || ""} none` }, "–");
  return el("td", { class: cls }, value);
}

function fill(tbody, rows, empty, columns) {
  const out = rows.length ? rows : [el("tr", {}, el("td", { colspan: columns, class: "muted" }, empty))];
  tbody.replaceChildren(...out);
}

function fmt(value, digits = 1) {
  if (value === null || value === undefined) return "–";
  return Number(value).toLocaleString("en", { maximumFractionDigits: digits });
}

function pct(value) {
  return value === null || value === undefined ? "–" : `${fmt(value, 2)} %`;
}

function when(iso) {
  if (!iso) return "–";
  return iso.replace("T", " ").replace(/\.\d+/, "").replace("+00:00", "Z");
}

function badge(state) {
  return el("span", { class: `state state-${String(state).toLowerCase()}` }, state);
}

const polls = [];

function poll(fn, everyMs) {
  let timer = null;
  let stopped = false;
  let busy = false;
  let again = false;
  const run = async () => {
    if (stopped) return;
    if (busy) {
      again = true; // asked while a fetch is under way: once more right after it
      return;
    }
    busy = true;
    clearTimeout(timer);
    try {
      if (!who.may_read) {
        // anonymous_read is off: nothing to fetch until a token is given.
        showStatus("This service needs a token to read: paste one above.", "poll");
      } else {
        await fn();
        if (!stopped) showStatus("", "poll");
      }
    } catch (error) {
      showStatus(`Could not refresh: ${error.message}`, "poll");
    } finally {
      busy = false;
    }
    if (stopped) return;
    timer = setTimeout(run, again ? 0 : everyMs);
    again = false;
  };
  run();
  const control = {
    now() {
      clearTimeout(timer);
      run();
    },
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
  window.addEventListener("pagehide", () => control.stop());
  polls.push(control);
  return control;
}

// -- token

async function refreshWho() {
  const flock = body.dataset.flock;
  const query = flock ? `?flock=${encodeURIComponent(flock)}` : "";
  try {
    who = await api(`/web/api/whoami${query}`);
  } catch (error) {
    if (error.status === 401 || error.status === 403) {
      sessionStorage.removeItem(TOKEN_KEY);
      showStatus(`Token refused (${error.message}); forgotten.`);
      who = await api(`/web/api/whoami${query}`);
    } else {
      throw error;
    }
  }
  const scopes = who.scopes.length ? ` (${who.scopes.join(", ")})` : "";
  $("#who").textContent = who.anonymous ? "anonymous: read only" : `${who.name}${scopes}`;
  for (const fn of onWho) fn();
  for (const control of polls) control.now();
}

function setupToken() {
  $("#token-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = $("#token").value.trim();
    $("#token").value = "";
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    await refreshWho();
  });
  $("#token-forget").addEventListener("click", async () => {
    sessionStorage.removeItem(TOKEN_KEY);
    await refreshWho();
  });
}

// -- charts (uPlot)

function chart(container, series, options = {}) {
  const width = Math.max(280, container.clientWidth || 600);
  const opts = {
    width,
    height: options.height || 220,
    series: [{}, ...series],
    // Three significant digits on the y axis: a few microseconds stay readable.
    axes: [{}, { size: 60, values: (u, splits) => splits.map((v) => (v === null ? "" : +v.toPrecision(3))) }],
    scales: { x: { time: options.time !== false } },
    legend: { live: true },
    cursor: { drag: { x: false, y: false } },
  };
  const data = [[], ...series.map(() => [])];
  const plot = new uPlot(opts, data, container);
  new ResizeObserver(() => {
    const w = Math.max(280, container.clientWidth);
    if (w !== plot.width) plot.setSize({ width: w, height: opts.height });
  }).observe(container);
  return plot;
}

// -- pages

function flockRow(flock) {
  const monkeys = Object.entries(flock.monkeys)
    .map(([state, n]) => `${n} ${state.toLowerCase()}`)
    .join(", ");
  const link = el("a", { href: `${BASE}/flocks/${encodeURIComponent(flock.name)}` }, flock.name);
  return el(
    "tr",
    { "data-flock": flock.name },
    el("th", { scope: "row" }, link),
    el("td", {}, badge(flock.state)),
    cell(`${flock.monkey_count}: ${monkeys || "none yet"}`),
    el("td", { class: "num executions", title: `${flock.failure_count} failed` }, fmt(flock.success_count + flock.failure_count, 0)),
    cell(pct(flock.success_pct_1h), "num"),
    cell(pct(flock.success_pct_24h), "num"),
    cell(fmt(flock.ops_per_s, 2), "num ops"),
    cell(flock.operation),
    cell(fmt(flock.p50_ms, 2), "num"),
    cell(fmt(flock.p95_ms, 2), "num"),
    cell(flock.client_bound ? "yes" : "no", flock.client_bound ? "warn" : ""),
  );
}

function runRow(run, withActions) {
  const link = el("a", { href: `${BASE}/runs/${run.id}` }, `#${run.id}`);
  const cells = [
    el("th", { scope: "row" }, link),
    el("td", {}, badge(run.state)),
    cell(`${run.project} ${run.step}`),
  ];
  if (withActions) cells.push(cell((run.presets || []).join(", ") || "–"));
  cells.push(cell(`${run.event_type} ${run.event_id}`), cell(when(run.created)));
  if (withActions) cells.push(cell(when(run.finished)));
  cells.push(cell(run.exit_code, "num"));
  if (withActions) {
    const open = run.state === "queued" || run.state === "running";
    const button = el(
      "button",
      {
        type: "button",
        class: "cancel",
        disabled: !(open && who.may_cancel),
        "aria-label": `Cancel run ${run.id}`,
        onclick: async () => {
          try {
            await api(`/runs/${run.id}/cancel`, { method: "POST" });
            runsPoll.now();
          } catch (error) {
            showStatus(`Cancel run ${run.id}: ${error.message}`);
          }
        },
      },
      "Cancel",
    );
    cells.push(el("td", {}, open ? button : ""));
  }
  return el("tr", { "data-run": run.id, "data-state": run.state }, ...cells);
}

function overviewPage() {
  poll(async () => {
    const data = await api("/web/api/overview");
    fill($("#flocks tbody"), data.flocks.map(flockRow), "No flock: PUT one to /flocks.", 11);
    const alerts = data.alerts.map((a) =>
      el("li", {}, el("strong", {}, a.flock), ` below its threshold (rule ${a.rule}): ${pct(a.success_pct)} since ${when(a.since)}`),
    );
    $("#alerts").replaceChildren(...(alerts.length ? alerts : [el("li", { class: "muted" }, "none")]));
    $("#alerts-section").classList.toggle("firing", alerts.length > 0);
    if (data.runs && $("#latest-runs")) {
      fill($("#latest-runs tbody"), data.runs.latest.map((r) => runRow(r, false)), "No run yet.", 6);
      $("#run-counts").textContent = Object.entries(data.runs.counts)
        .map(([s, n]) => `${n} ${s}`)
        .join(" · ");
    }
    $("#updated").textContent = `updated ${new Date(data.time * 1000).toLocaleTimeString()}`;
  }, 1000);
}

function flockPage() {
  const name = body.dataset.flock;
  const path = `/flocks/${encodeURIComponent(name)}`;
  let current = null;
  const buttons = {
    pause: $("#act-pause"),
    resume: $("#act-resume"),
    refresh: $("#act-refresh"),
    stop: $("#act-stop"),
  };
  const enable = () => {
    const may = who.may_change && current !== null;
    const paused = current && current.state === "paused";
    buttons.pause.disabled = !may || paused;
    buttons.resume.disabled = !may || !paused;
    buttons.refresh.disabled = !may;
    buttons.stop.disabled = !may;
    $("#act-why").textContent = who.may_change
      ? ""
      : "Changes need a token that may change this flock.";
  };
  onWho.push(enable);
  const act = (button, label, method, suffix, after) =>
    button.addEventListener("click", async () => {
      if (label === "stop" && !window.confirm(`Stop flock ${name}? Its monkeys stop and labs are deleted.`)) return;
      button.disabled = true;
      try {
        await api(path + suffix, { method });
        showStatus("");
        if (after) after();
        else rowPoll.now();
      } catch (error) {
        showStatus(`${label}: ${error.message}`);
        enable();
      }
    });
  act(buttons.pause, "pause", "POST", "/pause");
  act(buttons.resume, "resume", "POST", "/resume");
  act(buttons.refresh, "refresh", "POST", "/refresh");
  act(buttons.stop, "stop", "DELETE", "", () => {
    for (const control of polls) control.stop();
    window.location.href = BASE;
  });

  const rowPoll = poll(async () => {
    try {
      current = await api(`/web/api${path}`);
    } catch (error) {
      if (error.status === 404) {
        current = null;
        $("#flock-state").replaceChildren(badge("gone"));
        enable();
        for (const control of polls) control.stop();
        throw new Error(`flock ${name} is not running (stopped or never created)`);
      }
      throw error;
    }
    $("#flock-state").replaceChildren(badge(current.state));
    const facts = [
      ["Business", current.business],
      ["Monkeys", current.monkey_count],
      ["Success 1 h", pct(current.success_pct_1h)],
      ["Success 24 h", pct(current.success_pct_24h)],
      ["Executions", `${fmt(current.success_count, 0)} ok, ${fmt(current.failure_count, 0)} failed`],
      ["ops/s", fmt(current.ops_per_s, 2)],
      [`p50 / p95 ${current.operation}`, `${fmt(current.p50_ms, 2)} / ${fmt(current.p95_ms, 2)} ms`],
      ["Client-bound", current.client_bound ? "yes" : "no"],
      ["Started", when(current.start_time)],
      ["From", `${current.source} (${current.created_by})`],
    ];
    if (current.paused_labs) facts.push(["Paused, labs", current.paused_labs === "keep" ? "kept" : "released"]);
    $("#flock-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
    enable();
  }, 2000);

  // Charts of the chosen window.
  const rate = chart($("#chart-rate"), [
    { label: "executions/s", stroke: "#1f6feb", width: 2 },
    { label: "failures/s", stroke: "#d1242f", width: 2 },
  ]);
  const latency = chart($("#chart-latency"), [
    // Points as well as lines: a bucket between two empty ones still shows.
    { label: "p50", stroke: "#1a7f37", width: 2, points: { show: true, size: 4 } },
    { label: "p95", stroke: "#bf8700", width: 2, points: { show: true, size: 4 } },
    { label: "p99", stroke: "#8250df", width: 2, points: { show: true, size: 4 } },
  ]);
  const windowSelect = $("#window");
  let seriesPoll = null;
  const startSeries = () => {
    if (seriesPoll) seriesPoll.stop();
    const w = windowSelect.value;
    const every = { "15m": 5000, "1h": 10000, "6h": 30000, "24h": 60000, "7d": 300000 }[w];
    seriesPoll = poll(async () => {
      const s = await api(`/web/api${path}/series?window=${w}`);
      rate.setData([s.time, s.rate, s.failures]);
      latency.setData([s.time, s.p50_ms, s.p95_ms, s.p99_ms]);
      $("#series-op").textContent = s.operation;
      $("#series-note").textContent = `${fmt(s.events, 0)} events in ${fmt(s.bucket_s, 1)} s buckets`;
    }, every);
  };
  windowSelect.addEventListener("change", startSeries);
  startSeries();

  // Monkeys and one monkey's log.
  const filter = $("#monkey-filter");
  const showLog = async (monkey) => {
    const text = await api(`${path}/monkeys/${encodeURIComponent(monkey)}/log`);
    $("#log-monkey").textContent = monkey;
    $("#log").textContent = text || "(empty)";
    $("#log-section").hidden = false;
    $("#log").focus();
  };
  const monkeyPoll = poll(async () => {
    const state = filter.value ? `&state=${filter.value}` : "";
    const data = await api(`/web/api${path}/monkeys?limit=100${state}`);
    const rows = data.monkeys.map((m) =>
      el(
        "tr",
        {},
        el(
          "th",
          { scope: "row" },
          el(
            "button",
            { type: "button", class: "link", onclick: () => showLog(m.name).catch((e) => showStatus(e.message)) },
            m.name,
          ),
        ),
        el("td", {}, badge(m.state)),
        cell(fmt(m.success_count, 0), "num"),
        cell(fmt(m.failure_count, 0), "num"),
        cell(m.last_error, "error"),
      ),
    );
    fill($("#monkeys tbody"), rows, "No monkey in this state.", 5);
    $("#monkey-states").textContent = Object.entries(data.states)
      .map(([s, n]) => `${n} ${s.toLowerCase()}`)
      .join(" · ");
    $("#monkeys-more").textContent =
      data.total > data.monkeys.length ? `showing ${data.monkeys.length} of ${data.total} (failing first)` : "";
  }, 5000);
  filter.addEventListener("change", () => monkeyPoll.now());
}

let runsPoll = null;

function runsPage() {
  const stateSelect = $("#run-state");
  runsPoll = poll(async () => {
    const state = stateSelect.value ? `&state=${stateSelect.value}` : "";
    const data = await api(`/runs?limit=100${state}`);
    fill($("#runs tbody"), data.runs.map((r) => runRow(r, true)), "No run.", 9);
    $("#run-counts").textContent = Object.entries(data.counts)
      .map(([s, n]) => `${n} ${s}`)
      .join(" · ");
  }, 2000);
  stateSelect.addEventListener("change", () => runsPoll.now());
  onWho.push(() => runsPoll.now());
}

function runPage() {
  const id = body.dataset.run;
  const files = `${BASE}/runs/${id}/files/`;
  const cancel = $("#run-cancel");
  let run = null;
  const enable = () => {
    const open = run && (run.state === "queued" || run.state === "running");
    cancel.disabled = !(open && who.may_cancel);
  };
  onWho.push(enable);
  cancel.addEventListener("click", async () => {
    try {
      await api(`/runs/${id}/cancel`, { method: "POST" });
      control.now();
    } catch (error) {
      showStatus(`Cancel: ${error.message}`);
    }
  });
  const control = poll(async () => {
    const d = await api(`/web/api/runs/${id}`);
    run = d.run;
    $("#run-state").replaceChildren(badge(run.state));
    const facts = [
      ["Project / step", `${run.project} ${run.step}`],
      ["Presets", (run.presets || []).join(", ") || "–"],
      ["Event", `${run.event_type} ${run.event_id}`],
      ["Rule", run.rule],
      ["Created", when(run.created)],
      ["Started", when(run.started)],
      ["Finished", when(run.finished)],
      ["Exit code", run.exit_code ?? "–"],
      ["Attempts", `${run.attempts} of ${run.max_attempts}`],
      ["Artifact dir", run.artifact_dir || "–"],
    ];
    if (run.error) facts.push(["Error", run.error]);
    if (run.notes && run.notes.length) facts.push(["Notes", run.notes.join("; ")]);
    $("#run-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
    const report = $("#run-report");
    if (d.report) {
      report.href = files + d.report;
      report.hidden = false;
    }
    fill(
      $("#steps tbody"),
      d.steps.map((s) =>
        el(
          "tr",
          {},
          el("th", { scope: "row" }, el("a", { href: files + s.dir + "/" + "result.json" }, s.name)),
          el("td", {}, badge(s.failed ? "failure" : s.status || "?")),
          cell(fmt(s.duration_s, 2), "num"),
          el("td", {}, s.log ? el("a", { href: files + s.log }, "log") : "–"),
          cell(s.error, "error"),
        ),
      ),
      run.state === "queued" ? "Not started yet." : "No step recorded.",
      5,
    );
    fill(
      $("#cases tbody"),
      d.cases.map((c) =>
        el(
          "tr",
          {},
          el("th", { scope: "row" }, `${c.classname || ""}.${c.name}`),
          el("td", {}, badge(c.outcome)),
          cell(fmt(c.time_s, 3), "num"),
          cell(c.message, "error"),
        ),
      ),
      "No junit.xml (yet).",
      4,
    );
    const items = d.files.map((f) => el("li", {}, el("a", { href: files + f.path }, f.path), ` ${fmt(f.bytes, 0)} B`));
    if (d.files_cut) items.push(el("li", { class: "muted" }, "… (list cut)"));
    $("#files").replaceChildren(...(items.length ? items : [el("li", { class: "muted" }, "none yet")]));
    enable();
    if (["succeeded", "failed", "cancelled"].includes(run.state)) control.stop();
  }, 2000);
}

function resultRow(r) {
  const name = r.testcase.name;
  const runId = r.data && r.data.run_id;
  return el(
    "tr",
    { "data-outcome": r.outcome },
    el("th", { scope: "row" }, el("a", { href: `${BASE}/testcases/${encodeURIComponent(name)}` }, name)),
    el("td", {}, badge(r.outcome)),
    cell(when(r.submit_time)),
    cell(r.data && r.data.time_s !== undefined ? fmt(r.data.time_s, 3) : null, "num"),
    cell(r.note, "error"),
    el("td", {}, runId ? el("a", { href: `${BASE}/runs/${runId}` }, `#${runId}`) : "–"),
  );
}

function resultsPage() {
  const form = $("#results-form");
  const params = new URLSearchParams(window.location.search);
  for (const [key, value] of params) {
    const field = form.elements.namedItem(key);
    if (field && field.type === "checkbox") field.checked = value === "true";
    else if (field) field.value = value;
  }
  const search = async () => {
    const query = new URLSearchParams({ limit: "200" });
    for (const key of ["testcase", "outcome", "since", "until"]) {
      const value = form.elements.namedItem(key).value.trim();
      if (value) query.set(key, value);
    }
    if (form.elements.namedItem("latest").checked) query.set("latest", "true");
    // The search terms (never a token) stay in the address, so a search can be shared.
    const shown = new URLSearchParams(query);
    shown.delete("limit");
    history.replaceState(null, "", `${window.location.pathname}?${shown}`);
    try {
      const data = await api(`/results?${query}`);
      fill($("#results tbody"), data.data.map(resultRow), "No result matches.", 6);
      showStatus("");
    } catch (error) {
      showStatus(`Search: ${error.message}`);
    }
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    search();
  });
  search();
}

function testcasePage() {
  const name = body.dataset.testcase;
  const trend = chart($("#chart-duration"), [{ label: "seconds", stroke: "#1f6feb", width: 2, points: { show: true } }]);
  poll(async () => {
    const data = await api(`/results?testcase=${encodeURIComponent(name)}&limit=200`);
    const results = data.data.slice().reverse();
    $("#strip").replaceChildren(
      ...results.map((r) =>
        el(
          "li",
          { class: `outcome-${r.outcome.toLowerCase()}`, title: `${r.outcome} ${when(r.submit_time)}` },
          el("span", { class: "visually-hidden" }, `${r.outcome} ${when(r.submit_time)}`),
        ),
      ),
    );
    const passed = results.filter((r) => r.outcome === "PASSED").length;
    $("#strip-summary").textContent = `${passed} of ${results.length} passed`;
    const timed = results.filter((r) => r.data && typeof r.data.time_s === "number");
    $("#trend-note").textContent = timed.length ? "" : "No duration recorded for this test case (JUnit cases have one).";
    trend.setData([timed.map((r) => Date.parse(r.submit_time) / 1000), timed.map((r) => r.data.time_s)]);
    fill($("#results tbody"), data.data.map(resultRow), "No result for this test case.", 6);
  }, 10000);
}

async function main() {
  setupToken();
  await refreshWho().catch((error) => showStatus(error.message));
  const pages = {
    overview: overviewPage,
    flock: flockPage,
    runs: runsPage,
    run: runPage,
    results: resultsPage,
    testcase: testcasePage,
  };
  pages[body.dataset.page]();
}

// uPlot's script is deferred, as this module is: both have run once the DOM is parsed.
main();
