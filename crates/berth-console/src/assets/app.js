// The berth console: routes by URL fragment (#/services/default/web), reads and writes
// through berth's /v1 API, and refreshes the current view when the store's change
// stream (/v1/events/stream) reports a write. DOM is built with createElement and
// textContent only, so nothing from the API is ever parsed as HTML.

// ---------- the API ----------

class ApiFailure extends Error {
  constructor(status, body) {
    super(body.message || `HTTP ${status}`);
    this.status = status;
    this.type = body.__type || "";
    // A stack file's refusal names the member at fault; other refusals start with it.
    this.field = body.field || (/^([A-Za-z][\w.\[\]]*): /.exec(body.message || "") || [])[1] || "";
  }
}

// Every call carries X-Berth-Console: with a session cookie, the API refuses a change
// without it, so a form posted from another site cannot act with the session.
async function api(method, path, body, contentType) {
  const init = { method, headers: { "x-berth-console": "1" } };
  if (body !== undefined) {
    init.body = typeof body === "string" ? body : JSON.stringify(body);
    init.headers["content-type"] = contentType || "application/json";
  }
  const r = await fetch(path, init);
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = { message: text }; }
  if (!r.ok) {
    const failure = new ApiFailure(r.status, data || {});
    // The session ended (expired, signed out elsewhere, the key deleted): sign in again.
    // Whichever call finds it first shows the form; a view that was shown meanwhile
    // (a hash change) gives way to it at its next call.
    if (r.status === 403 && AUTH_ERRORS.includes(failure.type) && path !== "/console/session"
        && !document.getElementById("sign-in-form")) {
      signedIn = false;
      signInView();
    }
    throw failure;
  }
  return data;
}
const get = (path) => api("GET", path);

// ---------- DOM helpers ----------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
const svg = (tag, attrs) => {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  return el;
};
const link = (href, text) => h("a", { href }, text);
const last = (arn) => (arn || "").split("/").pop();
const when = (t) => (t ? new Date(t * 1000).toLocaleString() : "");
const ago = (t) => {
  if (!t) return "";
  const s = Math.max(0, Math.round(Date.now() / 1000 - t));
  return s < 60 ? `${s}s ago` : s < 3600 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
};
function table(id, caption, headers, rows, empty) {
  return h("table", { id },
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
    h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: headers.length, class: "empty" }, empty || "none"))));
}
function badge(text) {
  const t = String(text || "").toLowerCase();
  const tone = /healthy|running|active|completed|primary|success|true/.test(t) && !/unhealthy/.test(t) ? "ok"
    : /unhealthy|failed|stopped|false|inactive/.test(t) ? "bad"
    : /pending|initial|draining|in_progress|provisioning|activating|deactivating|stopping|unused|unknown/.test(t) ? "warn" : "";
  return h("span", { class: `badge ${tone}` }, text === undefined || text === null ? "" : String(text));
}
function section(title, ...content) {
  const id = "h-" + title.toLowerCase().replace(/[^a-z0-9]+/g, "-");
  return h("section", { "aria-labelledby": id }, h("h2", { id }, title), ...content);
}

// ---------- who may do what ----------

let allowed = new Set();
let signedIn = false;
// The caller's identity and allowed actions; false when the API wants a sign-in.
async function loadWhoami() {
  try {
    const w = await get("/v1/whoami");
    allowed = new Set(w.allowedActions || []);
    signedIn = true;
    document.getElementById("principal").textContent = w.principal;
    document.getElementById("sign-out").hidden = !w.authenticated;
  } catch (e) {
    allowed = new Set();
    if (e.status === 403 && AUTH_ERRORS.includes(e.type)) return false;
  }
  applyPermissions(document);
  return true;
}
const AUTH_ERRORS = ["MissingAuthenticationToken", "InvalidClientTokenId"];

// ---------- sign-in ----------
// The access key id and secret are sent once to POST /console/session, which answers
// an HttpOnly session cookie; the page keeps neither.

function signInView() {
  const id = h("input", { id: "access-key-id", name: "accessKeyId", autocomplete: "username", required: true, spellcheck: "false" });
  const secret = h("input", { id: "secret-access-key", name: "secretAccessKey", type: "password", autocomplete: "off", required: true });
  const error = h("p", { id: "sign-in-error", class: "notice error", role: "alert", hidden: true });
  const form = h("form", { id: "sign-in-form", class: "sign-in", onsubmit: async (e) => {
    e.preventDefault();
    error.hidden = true;
    try {
      await api("POST", "/console/session", { accessKeyId: id.value.trim(), secretAccessKey: secret.value });
    } catch (err) {
      secret.value = "";
      error.textContent = err.message;
      error.hidden = false;
      secret.focus();
      return;
    }
    secret.value = "";
    start();
  } },
    h("p", {}, "Sign in with an access key of a berth IAM user (berth iam create-access-key, or the admin's credentials file)."),
    h("label", { for: "access-key-id" }, "Access key ID"), id,
    h("label", { for: "secret-access-key" }, "Secret access key"), secret,
    h("button", { id: "sign-in", type: "submit" }, "Sign in"),
    error);
  if (current && current.stop) current.stop();
  current = null;
  document.title = "Sign in · berth";
  document.getElementById("view").replaceChildren(h("h1", {}, "Sign in"), form);
  id.focus();
}

async function signOut() {
  try { await api("DELETE", "/console/session"); } finally { location.reload(); }
}

// Every control of an action carries data-action="<IAM action>"; the others are hidden.
function applyPermissions(root) {
  for (const el of root.querySelectorAll("[data-action]")) el.hidden = !allowed.has(el.dataset.action);
}

// ---------- messages ----------

function notice(text, isError) {
  const box = document.getElementById("notice");
  if (!box) return;
  box.textContent = text;
  box.className = isError ? "notice error" : "notice";
}

// ---------- views ----------
// A view returns { node, refresh }: node is shown once; refresh() re-reads what it
// shows and is called again on every batch of store changes, so forms keep their input.

const views = [];
const route = (pattern, view) => views.push([pattern, view]);

function liveRegion(id) {
  return h("div", { id, class: "region" });
}
function fill(region, ...nodes) {
  region.replaceChildren(...nodes.flat());
  applyPermissions(region);
}

// Services
route(/^\/services$/, () => {
  const region = liveRegion("services-region");
  const refresh = async () => {
    const services = await get("/v1/services");
    fill(region, table("services", "Services", ["Service", "Cluster", "Status", "Running / desired", "Pending", "Task definition", "Rollout"],
      services.map((s) => {
        const primary = (s.deployments || []).find((d) => d.status === "PRIMARY");
        return h("tr", { "data-service": s.serviceName },
          h("th", { scope: "row" }, link(`#/services/${clusterOf(s)}/${s.serviceName}`, s.serviceName)),
          h("td", {}, clusterOf(s)),
          h("td", {}, badge(s.status)),
          h("td", { class: "running" }, `${s.runningCount}/${s.desiredCount}`),
          h("td", {}, s.pendingCount),
          h("td", {}, last(s.taskDefinition)),
          h("td", {}, primary ? badge(primary.rolloutState) : ""));
      }), "no services: apply a stack"));
  };
  return { title: "Services", node: region, refresh };
});

// One service
route(/^\/services\/([^/]+)\/([^/]+)$/, (cluster, name) => {
  const base = `/v1/clusters/${cluster}/services/${name}`;
  const input = h("input", { id: "desired-count", type: "number", min: 0, max: 10000, inputmode: "numeric", required: true });
  let loaded = false;
  const scaleForm = h("form", { class: "inline", "data-action": "ecs:UpdateService", onsubmit: async (e) => {
      e.preventDefault();
      await act(`Scaled ${name} to ${input.value}`, async () => {
        const svc = specOf(await get(base));
        svc.desiredCount = Number(input.value);
        await api("PUT", base, svc);
      });
    } },
    h("label", { for: "desired-count" }, "Desired count"), input,
    h("button", { id: "scale", type: "submit" }, "Scale"));
  const rollback = h("button", { id: "rollback", type: "button", "data-action": "ecs:UpdateService", onclick: () =>
    act(`Rolled ${name} back`, async () => {
      const svc = specOf(await get(base));
      const previous = await previousRevision(svc.taskDefinition);
      if (!previous) throw new Error("no earlier ACTIVE revision of this task definition");
      svc.taskDefinition = previous;
      await api("PUT", base, svc);
    }) }, "Roll back to the previous task definition");
  const redeploy = h("button", { id: "force-new-deployment", type: "button", "data-action": "ecs:UpdateService", onclick: () =>
    act(`Started a new deployment of ${name}`, () => api("POST", `${base}/deployments`, {})) }, "Force new deployment");
  const summary = liveRegion("service-summary");
  const charts = liveRegion("charts");
  const deployments = liveRegion("deployments-region");
  const tasks = liveRegion("service-tasks-region");
  const balancing = liveRegion("balancing-region");
  const scaling = liveRegion("scaling-region");
  const events = liveRegion("events-region");
  const refresh = async () => {
    const s = await get(base);
    if (!loaded) { input.value = s.desiredCount; loaded = true; }
    fill(summary, h("dl", { class: "facts" },
      h("dt", {}, "Status"), h("dd", {}, badge(s.status)),
      h("dt", {}, "Running"), h("dd", { id: "running-count" }, `${s.runningCount}/${s.desiredCount}`),
      h("dt", {}, "Pending"), h("dd", {}, s.pendingCount),
      h("dt", {}, "Task definition"), h("dd", {}, link(`#/task-definitions/${family(s.taskDefinition)}`, last(s.taskDefinition))),
      h("dt", {}, "Launch type"), h("dd", {}, s.launchType)));
    fill(deployments, table("deployments", "Deployments", ["Id", "Status", "Task definition", "Desired", "Running", "Pending", "Rollout", "Updated"],
      (s.deployments || []).map((d) => h("tr", { "data-deployment": d.id },
        h("td", {}, d.id), h("td", {}, badge(d.status)), h("td", {}, last(d.taskDefinition)),
        h("td", {}, d.desiredCount), h("td", {}, d.runningCount), h("td", {}, d.pendingCount),
        h("td", {}, badge(d.rolloutState), d.rolloutStateReason ? h("div", { class: "reason" }, d.rolloutStateReason) : ""),
        h("td", {}, ago(d.updatedAt))))));
    const ts = await get(`/v1/tasks?cluster=${cluster}&service=${name}`);
    fill(tasks, tasksTable("service-tasks", `Tasks of ${name}`, ts));
    const lbs = s.loadBalancers || [];
    fill(balancing, table("service-load-balancers", "Load balancers", ["Target group", "Container", "Port"],
      lbs.map((l) => {
        const tg = l.targetGroupName || last(l.targetGroupArn);
        return h("tr", {}, h("td", {}, link(`#/target-groups/${tg}`, tg)), h("td", {}, l.containerName), h("td", {}, l.containerPort));
      })));
    const [policies, activities] = await Promise.all([
      get(`/v1/scaling-policies?cluster=${cluster}&service=${name}`).catch(() => []),
      get(`${base}/scaling-activities`).catch(() => []),
    ]);
    fill(scaling,
      table("scaling-policies", "Scaling policies", ["Policy", "Type", "Configuration"],
        policies.map((p) => h("tr", {}, h("td", {}, p.policyName), h("td", {}, p.policyType),
          h("td", {}, h("code", {}, JSON.stringify(p.targetTrackingScalingPolicyConfiguration || p.stepScalingPolicyConfiguration || {})))))),
      table("scaling-activities", "Scaling activities", ["Started", "Status", "Description", "Cause"],
        activities.slice(0, 20).map((a) => h("tr", {}, h("td", {}, when(a.startTime)), h("td", {}, badge(a.statusCode)),
          h("td", {}, a.description), h("td", {}, a.cause)))));
    fill(events, h("ol", { id: "events", class: "timeline" },
      (s.events || []).slice(0, 50).map((e) => h("li", {}, h("time", { datetime: new Date(e.createdAt * 1000).toISOString() }, when(e.createdAt)), " ", e.message))));
    const history = await get(`${base}/metrics-history`).catch(() => ({ points: [] }));
    fill(charts, chartsOf(history.points));
  };
  const node = h("div", {},
    h("div", { class: "actions" }, scaleForm, rollback, redeploy),
    summary,
    section("Traffic, last hour", charts),
    section("Deployments", deployments),
    section("Tasks", tasks),
    section("Load balancing", balancing),
    section("Scaling", scaling),
    section("Events", events));
  return { title: `Service ${name}`, node, refresh };
});

// What PUT /v1/clusters/{c}/services/{name} takes back: the spec without berth's counts.
function specOf(s) {
  const out = { ...s };
  for (const k of ["serviceArn", "clusterArn", "status", "runningCount", "pendingCount", "deployments", "events", "createdAt"]) delete out[k];
  out.cluster = clusterOf(s);
  return out;
}
// A service's cluster by name (the stored `cluster` may be a name or an ARN).
function clusterOf(s) {
  return last(s.clusterArn || s.cluster) || "default";
}
function family(td) {
  return last(td).split(":")[0];
}
async function previousRevision(taskDefinition) {
  const fam = family(taskDefinition);
  const revs = (await get("/v1/task-definitions"))
    .filter((d) => d.family === fam && d.status !== "INACTIVE")
    .map((d) => d.revision)
    .sort((a, b) => b - a);
  const current = Number(last(taskDefinition).split(":")[1]) || revs[0];
  const previous = revs.find((r) => r < current);
  return previous ? `${fam}:${previous}` : null;
}

// Charts: inline SVG polylines, one per metric, no library.
function chartsOf(points) {
  const series = [
    ["rps", "Requests per second", (p) => p.requestsPerSecond, ""],
    ["p99", "p99 latency (ms)", (p) => p.p99LatencyMs, ""],
    ["5xx", "5xx responses", (p) => p.errors5xx, ""],
    ["tasks", "Tasks running (dashed: desired)", (p) => p.running, (p) => p.desired],
  ];
  return h("div", { class: "charts" }, series.map(([id, title, value, second]) => chart(id, title, points, value, second)));
}
function chart(id, title, points, value, second) {
  const w = 300, hgt = 80;
  const vals = points.map(value);
  const extra = second ? points.map(second) : [];
  const known = vals.concat(extra).filter((v) => v !== null && v !== undefined);
  const max = Math.max(1, ...known);
  const t0 = points.length ? points[0].at : 0;
  const t1 = points.length ? Math.max(points[points.length - 1].at, t0 + 1) : 1;
  const x = (t) => ((t - t0) / (t1 - t0)) * w;
  const y = (v) => hgt - (v / max) * (hgt - 4) - 2;
  const box = svg("svg", { viewBox: `0 0 ${w} ${hgt}`, class: "chart", role: "img", "aria-label": `${title}: ${known.length ? "latest " + fmt(vals[vals.length - 1]) : "no data yet"}` });
  const line = (vs, cls) => {
    const pts = points.map((p, i) => (vs[i] === null || vs[i] === undefined ? null : `${x(p.at).toFixed(1)},${y(vs[i]).toFixed(1)}`)).filter(Boolean);
    if (!pts.length) return;
    box.append(svg("polyline", { points: pts.join(" "), class: cls }));
    // The latest point as a dot, so a series of one sample shows too.
    const [cx, cy] = pts[pts.length - 1].split(",");
    box.append(svg("circle", { cx, cy, r: 3, class: `dot ${cls}` }));
  };
  if (second) line(extra, "line second");
  line(vals, "line");
  const latest = vals.length ? vals[vals.length - 1] : null;
  return h("figure", { class: "chart-box", "data-metric": id }, h("figcaption", {}, title, " ", h("strong", {}, fmt(latest)), ` (max ${fmt(known.length ? max : null)})`), box);
}
const fmt = (v) => (v === null || v === undefined ? "–" : Number.isInteger(v) ? String(v) : v.toFixed(2));

// Tasks
function tasksTable(id, caption, tasks) {
  tasks = [...tasks].sort((a, b) => (a.lastStatus === "STOPPED") - (b.lastStatus === "STOPPED") || b.createdAt - a.createdAt);
  return table(id, caption, ["Task", "Group", "Status", "Health", "Stop code and reason", "Exit codes", "Ports", "Node", ""],
    tasks.map((t) => {
      const c = last(t.clusterArn);
      const id = last(t.taskArn);
      const stop = t.desiredStatus !== "STOPPED" ? stopButton(c, id) : "";
      return h("tr", { "data-task": id, class: t.lastStatus === "STOPPED" ? "stopped" : "" },
        h("th", { scope: "row" }, link(`#/tasks/${c}/${id}`, id.slice(0, 12))),
        h("td", {}, t.group),
        h("td", { class: "status" }, badge(t.lastStatus), t.desiredStatus !== t.lastStatus ? h("span", { class: "reason" }, ` → ${t.desiredStatus}`) : ""),
        h("td", {}, badge(t.healthStatus)),
        h("td", {}, t.stopCode || "", t.stoppedReason ? h("div", { class: "reason" }, t.stoppedReason) : ""),
        h("td", {}, (t.containers || []).filter((x) => x.exitCode !== null && x.exitCode !== undefined).map((x) => `${x.name}: ${x.exitCode}`).join(", ")),
        h("td", {}, (t.containers || []).flatMap((x) => (x.networkBindings || []).map((b) => `${b.hostPort}→${b.containerPort}`)).join(", ")),
        h("td", {}, last(t.containerInstanceArn)),
        h("td", {}, stop));
    }), "no tasks");
}
// Stopping takes two clicks: the first asks (and stays asked across refreshes), the
// second stops.
const armedStops = new Set();
function stopButton(cluster, id) {
  const armed = armedStops.has(id);
  const b = h("button", { type: "button", class: "stop-task danger", "data-task": id, "data-armed": armed ? "yes" : "no", "data-action": "ecs:StopTask", "aria-label": `Stop task ${id}` }, armed ? "Confirm stop" : "Stop");
  b.addEventListener("click", () => {
    if (!armedStops.has(id)) {
      armedStops.add(id);
      b.dataset.armed = "yes";
      b.textContent = "Confirm stop";
      return;
    }
    armedStops.delete(id);
    act(`Stopping task ${id.slice(0, 12)}`, () => api("POST", `/v1/clusters/${cluster}/tasks/${id}/stop`, { reason: "Task stopped from the console" }));
  });
  return b;
}
route(/^\/tasks$/, () => {
  const region = liveRegion("tasks-region");
  const refresh = async () => fill(region, tasksTable("tasks", "Tasks", await get("/v1/tasks")));
  return { title: "Tasks", node: region, refresh };
});
route(/^\/tasks\/([^/]+)\/([^/]+)$/, (cluster, id) => {
  const region = liveRegion("task-region");
  const logs = h("pre", { id: "logs", class: "logs", tabindex: 0, "aria-label": "Task output" });
  let streaming = null;
  const refresh = async () => {
    const t = await get(`/v1/clusters/${cluster}/tasks/${id}`);
    fill(region, tasksTable("task", `Task ${id}`, [t]),
      table("containers", "Containers", ["Container", "Image", "Status", "Health", "Exit code", "Reason"],
        (t.containers || []).map((c) => h("tr", {}, h("td", {}, c.name), h("td", {}, c.image), h("td", {}, badge(c.lastStatus)),
          h("td", {}, badge(c.healthStatus)), h("td", {}, c.exitCode ?? ""), h("td", {}, c.reason || "")))));
    if (!streaming) streaming = followLogs(`/v1/clusters/${cluster}/tasks/${id}/logs?follow=true`, logs);
  };
  const stop = () => streaming && streaming.abort();
  return { title: `Task ${id}`, node: h("div", {}, region, section("Logs", logs)), refresh, stop };
});
// Streams a task's output into `pre` as `berth logs -f` does, until aborted.
function followLogs(path, pre) {
  const ctl = new AbortController();
  (async () => {
    try {
      const r = await fetch(path, { signal: ctl.signal });
      if (!r.ok) { pre.textContent = (await r.json().catch(() => ({}))).message || `HTTP ${r.status}`; return; }
      const reader = r.body.getReader();
      const dec = new TextDecoder();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
        pre.append(dec.decode(value, { stream: true }));
        if (atEnd) pre.scrollTop = pre.scrollHeight;
      }
    } catch (e) {
      if (e.name !== "AbortError") pre.append(`\n[log stream ended: ${e.message}]`);
    }
  })();
  return ctl;
}

// Clusters and container instances
route(/^\/clusters$/, () => {
  const region = liveRegion("clusters-region");
  const res = (list, n) => ((list || []).find((r) => r.name === n) || {}).integerValue ?? "";
  const refresh = async () => {
    const [clusters, instances] = await Promise.all([get("/v1/clusters"), get("/v1/container-instances")]);
    fill(region,
      table("clusters", "Clusters", ["Cluster", "Status", "Instances", "Services", "Running", "Pending"],
        clusters.map((c) => h("tr", {}, h("th", { scope: "row" }, c.clusterName), h("td", {}, badge(c.status)),
          h("td", {}, c.registeredContainerInstancesCount), h("td", {}, c.activeServicesCount),
          h("td", {}, c.runningTasksCount), h("td", {}, c.pendingTasksCount)))),
      table("instances", "Container instances", ["Instance", "Cluster", "Status", "Agent", "CPU (remaining / registered)", "Memory MiB (remaining / registered)", "Tasks", "Attributes", ""],
        instances.map((i) => {
          const c = last(i.clusterArn);
          const id = last(i.containerInstanceArn);
          const next = i.status === "DRAINING" ? "ACTIVE" : "DRAINING";
          return h("tr", { "data-instance": id },
            h("th", { scope: "row" }, id),
            h("td", {}, c),
            h("td", {}, badge(i.status)),
            h("td", {}, badge(i.agentConnected ? "connected" : "disconnected")),
            h("td", {}, `${res(i.remainingResources, "CPU")} / ${res(i.registeredResources, "CPU")}`),
            h("td", {}, `${res(i.remainingResources, "MEMORY")} / ${res(i.registeredResources, "MEMORY")}`),
            h("td", {}, `${i.runningTasksCount} running, ${i.pendingTasksCount} pending`),
            h("td", {}, h("details", {}, h("summary", {}, `${Object.keys(i.attributes || {}).length} attributes`),
              h("dl", { class: "attrs" }, Object.entries(i.attributes || {}).flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])))),
            h("td", {}, h("button", { type: "button", class: next === "DRAINING" ? "danger" : "", "data-action": "ecs:UpdateContainerInstancesState",
              onclick: () => act(`${id}: ${next}`, () => api("POST", `/v1/clusters/${c}/container-instances/${id}/state`, { status: next })) },
              next === "DRAINING" ? "Drain" : "Activate")));
        })));
  };
  return { title: "Clusters", node: region, refresh };
});

// Load balancers, listeners and rules in priority order
function actionText(a) {
  const tgs = a.forwardConfig && a.forwardConfig.targetGroups
    ? a.forwardConfig.targetGroups.map((t) => `${t.targetGroupName || last(t.targetGroupArn)} (weight ${t.weight})`)
    : [a.targetGroupName || last(a.targetGroupArn)].filter(Boolean);
  if (tgs.length) return h("span", {}, `${a.type} → `, tgs.map((t, i) => [i ? ", " : "", link(`#/target-groups/${t.split(" ")[0]}`, t)]));
  const rest = { ...a };
  delete rest.type;
  return `${a.type} ${JSON.stringify(rest)}`;
}
route(/^\/load-balancers$/, () => {
  const region = liveRegion("load-balancers-region");
  const refresh = async () => {
    const lbs = await get("/v1/load-balancers");
    fill(region, lbs.length ? lbs.map((lb) => section(`${lb.loadBalancerName} (${lb.type || "application"})`,
      lb.state && lb.state.code ? h("p", {}, "State: ", badge(lb.state.code), lb.state.reason ? ` ${lb.state.reason}` : "") : "",
      (lb.listeners || []).map((l) => table(`listener-${lb.loadBalancerName}-${l.port}`,
        `Listener ${l.protocol} :${l.port}${l.boundPort && l.boundPort !== l.port ? ` (bound on ${l.boundPort})` : ""}`,
        ["Priority", "Conditions", "Actions"],
        [...(l.rules || [])].sort((a, b) => a.priority - b.priority).map((r) => h("tr", {},
          h("td", {}, r.priority),
          h("td", {}, (r.conditions || []).map((c) => h("code", { class: "cond" }, JSON.stringify(c)))),
          h("td", {}, (r.actions || []).map(actionText))))
          .concat([h("tr", { class: "default" }, h("td", {}, "default"), h("td", {}, "(none match)"), h("td", {}, (l.defaultActions || []).map(actionText)))]))))) : h("p", {}, "no load balancers"));
  };
  return { title: "Load balancers", node: region, refresh };
});

// Target groups and their targets
route(/^\/target-groups$/, () => {
  const region = liveRegion("target-groups-region");
  const refresh = async () => {
    const tgs = await get("/v1/target-groups");
    const counts = await Promise.all(tgs.map((tg) => get(`/v1/target-groups/${tg.targetGroupName}/targets`).catch(() => [])));
    fill(region, table("target-groups", "Target groups", ["Target group", "Protocol", "Port", "Health check", "Healthy", "Targets"],
      tgs.map((tg, i) => h("tr", {},
        h("th", { scope: "row" }, link(`#/target-groups/${tg.targetGroupName}`, tg.targetGroupName)),
        h("td", {}, tg.protocol), h("td", {}, tg.port), h("td", {}, `${tg.healthCheckProtocol || ""} ${tg.healthCheckPath || ""}`),
        h("td", {}, counts[i].filter((t) => t.targetHealth.state === "healthy").length),
        h("td", {}, counts[i].length)))));
  };
  return { title: "Target groups", node: region, refresh };
});
route(/^\/target-groups\/([^/]+)$/, (name) => {
  const region = liveRegion("target-group-region");
  const refresh = async () => {
    const [tg, targets] = await Promise.all([get(`/v1/target-groups/${name}`), get(`/v1/target-groups/${name}/targets`)]);
    const healthy = targets.filter((t) => t.targetHealth.state === "healthy").length;
    fill(region,
      h("dl", { class: "facts" },
        h("dt", {}, "Protocol"), h("dd", {}, `${tg.protocol} :${tg.port}`),
        h("dt", {}, "Health check"), h("dd", {}, `${tg.healthCheckPath || ""} every ${tg.healthCheckIntervalSeconds ?? ""}s`),
        h("dt", {}, "Healthy"), h("dd", { id: "healthy-count" }, `${healthy} of ${targets.length}`)),
      table("targets", `Targets of ${name}`, ["Target", "State", "Reason", "Description", "Task", "Registered"],
        targets.map((t) => h("tr", { class: "target", "data-state": t.targetHealth.state },
          h("th", { scope: "row" }, `${t.id}:${t.port}`),
          h("td", { class: "state" }, badge(t.targetHealth.state)),
          h("td", {}, t.targetHealth.reason || ""),
          h("td", {}, t.targetHealth.description || ""),
          h("td", {}, t.taskArn ? link(`#/tasks/${last(t.taskArn.split("/").slice(-2, -1)[0])}/${last(t.taskArn)}`, last(t.taskArn).slice(0, 12)) : ""),
          h("td", {}, ago(t.registeredAt))))));
  };
  return { title: `Target group ${name}`, node: region, refresh };
});

// Task definitions, revisions and the diff of two
route(/^\/task-definitions$/, () => {
  const region = liveRegion("task-definitions-region");
  const refresh = async () => {
    const defs = await get("/v1/task-definitions");
    const families = {};
    for (const d of defs) (families[d.family] = families[d.family] || []).push(d);
    fill(region, table("task-definitions", "Task definitions", ["Family", "Revisions", "Latest"],
      Object.entries(families).map(([f, ds]) => h("tr", {},
        h("th", { scope: "row" }, link(`#/task-definitions/${f}`, f)),
        h("td", {}, ds.map((d) => d.revision).sort((a, b) => a - b).join(", ")),
        h("td", {}, badge(ds.sort((a, b) => b.revision - a.revision)[0].status))))));
  };
  return { title: "Task definitions", node: region, refresh };
});
route(/^\/task-definitions\/([^/]+)$/, (fam) => {
  const region = liveRegion("revisions-region");
  const left = h("select", { id: "diff-from" });
  const right = h("select", { id: "diff-to" });
  const out = h("pre", { id: "diff", class: "diff", tabindex: 0, "aria-label": "Differences" });
  let defs = [];
  const show = () => {
    const a = defs.find((d) => String(d.revision) === left.value);
    const b = defs.find((d) => String(d.revision) === right.value);
    if (!a || !b) { out.textContent = ""; return; }
    const lines = withContext(diffLines(pretty(a), pretty(b)), 3);
    out.replaceChildren(...(lines.some(([op]) => op !== " " && op !== "…") ? lines : [["…", "the two revisions are the same"]])
      .map(([op, text]) => h("span", { class: op === "+" ? "add" : op === "-" ? "del" : "same" }, `${op} ${text}\n`)));
  };
  left.addEventListener("change", show);
  right.addEventListener("change", show);
  const refresh = async () => {
    defs = (await get("/v1/task-definitions")).filter((d) => d.family === fam).sort((a, b) => a.revision - b.revision);
    fill(region, table("revisions", `Revisions of ${fam}`, ["Revision", "Status", "Registered", "Containers"],
      defs.map((d) => h("tr", {}, h("td", {}, d.revision), h("td", {}, badge(d.status)), h("td", {}, when(d.registeredAt)),
        h("td", {}, (d.containerDefinitions || []).map((c) => `${c.name} (${c.image})`).join(", "))))));
    const keep = [left.value, right.value];
    for (const sel of [left, right]) sel.replaceChildren(...defs.map((d) => h("option", { value: d.revision }, `${fam}:${d.revision}`)));
    if (keep[0] && keep[1]) { left.value = keep[0]; right.value = keep[1]; }
    else if (defs.length) { left.value = defs[Math.max(0, defs.length - 2)].revision; right.value = defs[defs.length - 1].revision; }
    show();
  };
  const node = h("div", {}, region, section("Compare revisions",
    h("div", { class: "inline" }, h("label", { for: "diff-from" }, "From"), left, h("label", { for: "diff-to" }, "to"), right), out));
  return { title: `Task definition ${fam}`, node, refresh };
});
// Pretty JSON without the fields that always differ between revisions.
function pretty(d) {
  const c = { ...d };
  for (const k of ["taskDefinitionArn", "revision", "registeredAt", "deregisteredAt"]) delete c[k];
  return JSON.stringify(c, null, 2).split("\n");
}
// Keeps `n` unchanged lines around each change; each longer run becomes one "…" line.
function withContext(ops, n) {
  const near = ops.map(() => false);
  ops.forEach(([op], i) => {
    if (op === " ") return;
    for (let j = Math.max(0, i - n); j <= Math.min(ops.length - 1, i + n); j++) near[j] = true;
  });
  const out = [];
  ops.forEach((o, i) => {
    if (near[i]) out.push(o);
    else if (!out.length || out[out.length - 1][0] !== "…") out.push(["…", ""]);
  });
  return out;
}
// A line diff by longest common subsequence: [op, line] with op "+", "-" or " ".
function diffLines(a, b) {
  const n = a.length, m = b.length;
  const lcs = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--)
    lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
  const out = [];
  let i = 0, j = 0;
  while (i < n && j < m) {
    if (a[i] === b[j]) { out.push([" ", a[i]]); i++; j++; }
    else if (lcs[i + 1][j] >= lcs[i][j + 1]) out.push(["-", a[i++]]);
    else out.push(["+", b[j++]]);
  }
  while (i < n) out.push(["-", a[i++]]);
  while (j < m) out.push(["+", b[j++]]);
  return out;
}

// Apply a stack file, pasted or uploaded
route(/^\/apply$/, () => {
  const editor = h("textarea", { id: "stack-editor", rows: 12, spellcheck: "false", "aria-describedby": "stack-error stack-help" });
  const file = h("input", { id: "stack-file", type: "file", accept: ".yaml,.yml,.json,text/yaml,application/json" });
  const error = h("p", { id: "stack-error", class: "field-error", role: "alert" });
  const result = h("div", { id: "apply-result", role: "status" });
  file.addEventListener("change", async () => {
    if (file.files.length) editor.value = await file.files[0].text();
  });
  const send = async (dryRun) => {
    error.replaceChildren();
    error.removeAttribute("data-field");
    editor.removeAttribute("aria-invalid");
    result.replaceChildren();
    try {
      const changes = await api("POST", `/v1/stack-files/apply${dryRun ? "?dryRun=true" : ""}`, editor.value, "application/yaml");
      result.replaceChildren(table("changes", dryRun ? "What applying would change" : "Applied", ["Kind", "Name", "Action"],
        changes.map((c) => h("tr", {}, h("td", {}, c.kind), h("td", {}, c.name), h("td", {}, c.action))), "nothing to change"));
    } catch (e) {
      editor.setAttribute("aria-invalid", "true");
      if (e.field) error.dataset.field = e.field;
      const message = e.field && e.message.startsWith(`${e.field}: `) ? e.message.slice(e.field.length + 2) : e.message;
      error.append(e.field ? h("code", { class: "field" }, e.field) : "", e.field ? ": " : "", message);
    }
  };
  const node = h("form", { class: "apply", "data-action": "berth:ApplyStack", onsubmit: (e) => { e.preventDefault(); send(false); } },
    h("p", { id: "stack-help" }, "Paste a stack file (YAML or JSON, as for ", h("code", {}, "berth apply -f"), ") or choose one. Nothing changes unless the whole file is valid."),
    h("label", { for: "stack-editor" }, "Stack file"), editor, error,
    h("div", { class: "inline" }, h("label", { for: "stack-file" }, "Or upload"), file),
    h("div", { class: "inline" },
      h("button", { id: "dry-run", type: "button", onclick: () => send(true) }, "Dry run"),
      h("button", { id: "apply", type: "submit" }, "Apply")),
    result);
  return { title: "Apply a stack", node, refresh: async () => {} };
});

// ---------- actions ----------

async function act(what, fn) {
  try {
    await fn();
    notice(what);
    scheduleRefresh(0);
  } catch (e) {
    notice(`${what}: failed: ${e.message}`, true);
  }
}

// ---------- routing and refreshing ----------

let current = null;
let refreshing = false;
let again = false;

async function runRefresh() {
  if (!current) return;
  if (refreshing) { again = true; return; }
  refreshing = true;
  try {
    await current.refresh();
  } catch (e) {
    notice(`Could not load: ${e.message}`, true);
  } finally {
    refreshing = false;
    if (again) { again = false; scheduleRefresh(100); }
  }
}
let timer = null;
function scheduleRefresh(delay) {
  clearTimeout(timer);
  timer = setTimeout(runRefresh, delay);
}

function show() {
  // Signed out: a hash change keeps the sign-in form.
  if (!signedIn) { if (!document.getElementById("sign-in-form")) signInView(); return; }
  const path = (location.hash || "#/services").slice(1);
  if (current && current.stop) current.stop();
  let made = null;
  for (const [pattern, view] of views) {
    const m = pattern.exec(path);
    if (m) { made = view(...m.slice(1).map(decodeURIComponent)); break; }
  }
  if (!made) made = { title: "Not found", node: h("p", {}, `Nothing at ${path}.`), refresh: async () => {} };
  current = made;
  document.title = `${made.title} · berth`;
  for (const a of document.querySelectorAll("nav a")) {
    if (path.startsWith(a.getAttribute("href").slice(1))) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const main = document.getElementById("view");
  main.replaceChildren(h("h1", {}, made.title), h("p", { id: "notice", class: "notice", role: "status" }), made.node);
  applyPermissions(main);
  runRefresh();
}

// The change stream: each batch of writes refreshes the current view once.
function connect() {
  const live = document.getElementById("live");
  const es = new EventSource("/v1/events/stream");
  es.addEventListener("hello", () => { live.textContent = "live"; live.className = "live on"; scheduleRefresh(0); });
  es.addEventListener("change", () => scheduleRefresh(150));
  es.addEventListener("resync", () => scheduleRefresh(0));
  es.onerror = () => { live.textContent = "reconnecting"; live.className = "live off"; };
}

// Charts and "ago" times move with the clock even when the store does not.
setInterval(() => scheduleRefresh(0), 10000);
document.getElementById("sign-out").addEventListener("click", signOut);
let started = false;
async function start() {
  if (!(await loadWhoami())) { signInView(); return; }
  show();
  if (!started) { started = true; window.addEventListener("hashchange", show); connect(); }
}
start();
