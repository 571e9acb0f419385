// kubegate console: plain JavaScript, no framework. Every value from the
// server goes into the page as text (textContent), never as HTML.
"use strict";

let me = null;
let stopPage = () => {};

// el builds an element: el("div", {class: "x", onclick: f}, child, "text").
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function main() { return document.getElementById("main"); }

// put replaces box's children, leaving out the absent ones.
function put(box, ...kids) { box.replaceChildren(...kids.flat().filter((k) => k !== null && k !== undefined && k !== false)); }

function toast(msg, bad) {
  const t = document.getElementById("toast");
  t.textContent = msg;
  t.className = "toast" + (bad ? " bad" : "");
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 5000);
}

async function api(path, opts) {
  opts = opts || {};
  const headers = Object.assign({}, opts.headers || {});
  if (opts.method && opts.method !== "GET") {
    headers["X-Kubegate-Csrf"] = me.csrf;
    headers["Content-Type"] = "application/json";
  }
  const resp = await fetch(path, Object.assign({}, opts, { headers, credentials: "same-origin" }));
  if (resp.status === 401) {
    location.href = "/ui/login?return=" + encodeURIComponent(location.pathname + location.search);
    throw new Error("signed out");
  }
  const text = await resp.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (e) { body = { message: text }; }
  if (!resp.ok) throw new Error((body && body.message) || resp.statusText);
  return body;
}

// Time helpers.
function ago(t, now) {
  const s = Math.max(0, Math.round((now - new Date(t)) / 1000));
  return dur(s) + " ago";
}
function dur(s) {
  s = Math.round(s);
  if (s < 60) return s + "s";
  const m = Math.floor(s / 60);
  if (m < 60) return m + "m " + String(s % 60).padStart(2, "0") + "s";
  const h = Math.floor(m / 60);
  if (h < 48) return h + "h " + String(m % 60).padStart(2, "0") + "m";
  return Math.floor(h / 24) + "d " + (h % 24) + "h";
}
function when(t) {
  const d = new Date(t);
  return d.toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });
}
function isZero(t) { return !t || t.startsWith("0001-"); }

function fact(k, v) {
  return el("div", { class: "fact" }, el("div", { class: "k" }, k), el("div", { class: "v" }, v));
}

function pageHead(title, sub, extra) {
  return [el("div", { class: "page-head" }, el("h1", {}, title), extra ? el("div", { class: "page-actions" }, extra) : null), el("p", { class: "page-sub" }, sub)];
}

// ---------------------------------------------------------------- approvals

function renderApprovals() {
  const root = main();
  const live = el("span", { class: "live", id: "live" }, el("span", { class: "dot" }), el("span", { class: "live-text" }, "Connecting"));
  const pendingBox = el("div", { class: "cards", id: "pending" }, el("div", { class: "loading" }, "Loading access requests\u2026"));
  const decidedBox = el("div", { id: "decided" });
  root.replaceChildren(
    ...pageHead("Approvals", "Calls and sessions that a policy rule holds until a person decides. The list updates by itself.", live),
    el("h2", {}, "Waiting for a decision"), pendingBox,
    el("h2", {}, "Recent decisions"), decidedBox);

  let data = null;
  let offset = 0; // server time minus local time
  const seen = new Set();
  const drafts = new Map(); // reasons typed, kept across updates

  function draw() {
    if (!data) return;
    const now = new Date(Date.now() + offset);
    // Keep what the person is typing.
    for (const inp of pendingBox.querySelectorAll("input[data-id]")) drafts.set(inp.dataset.id, inp.value);
    const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.id : null;
    const count = document.getElementById("pending-count");
    count.textContent = String(data.pending.length);
    count.hidden = data.pending.length === 0;
    if (data.pending.length === 0) {
      pendingBox.replaceChildren(el("div", { class: "empty" }, "Nothing is waiting for a decision."));
    } else {
      pendingBox.replaceChildren(...data.pending.map((r) => pendingCard(r, now, seen, drafts)));
    }
    for (const r of data.pending) seen.add(r.id);
    if (focused) {
      const inp = pendingBox.querySelector(`input[data-id="${CSS.escape(focused)}"]`);
      if (inp) inp.focus();
    }
    decidedBox.replaceChildren(decidedTable(data.decided));
  }

  const es = new EventSource("/ui/api/events");
  es.addEventListener("open", () => { live.classList.add("on"); live.querySelector(".live-text").textContent = "Live"; });
  es.addEventListener("error", () => { live.classList.remove("on"); live.querySelector(".live-text").textContent = "Reconnecting"; });
  es.addEventListener("approvals", (ev) => {
    data = JSON.parse(ev.data);
    offset = new Date(data.now) - Date.now();
    draw();
  });
  es.addEventListener("expired", () => { location.href = "/ui/login?return=/ui/approvals"; });
  const timer = setInterval(() => {
    // Ages and countdowns move on between updates; skip while typing.
    if (document.activeElement && document.activeElement.tagName === "INPUT") {
      for (const t of pendingBox.querySelectorAll("[data-expires]")) updateClock(t, new Date(Date.now() + offset));
      return;
    }
    draw();
  }, 1000);
  stopPage = () => { es.close(); clearInterval(timer); };
}

function updateClock(box, now) {
  const left = (new Date(box.dataset.expires) - now) / 1000;
  const l = box.querySelector(".left");
  l.textContent = left > 0 ? dur(left) + " left" : "expired";
  l.classList.toggle("soon", left < 60);
  box.querySelector(".age").textContent = "held " + ago(box.dataset.created, now);
}

function pendingCard(r, now, seen, drafts) {
  const t = r.target || {};
  const left = (new Date(r.expiresAt) - now) / 1000;
  const reasonInput = el("input", { type: "text", placeholder: "Reason (required)", "data-id": r.id, "aria-label": "Reason", maxlength: "500" });
  reasonInput.value = drafts.get(r.id) || "";
  const approve = el("button", { class: "approve", type: "button", disabled: !r.canDecide, "data-action": "approve" }, "Approve");
  const deny = el("button", { class: "deny", type: "button", disabled: !r.canDecide, "data-action": "deny" }, "Deny");
  async function act(verb) {
    const reason = reasonInput.value.trim();
    if (!reason) { toast("Give a reason: it goes to the audit log and to the requester.", true); reasonInput.focus(); return; }
    approve.disabled = deny.disabled = true;
    try {
      const res = await api(`/ui/api/requests/${encodeURIComponent(r.id)}/${verb}`, { method: "POST", body: JSON.stringify({ reason }) });
      drafts.delete(r.id);
      toast(`${verb === "approve" ? "Approved" : "Denied"}: ${res.summary || r.summary} (${res.state})`);
    } catch (e) {
      toast(e.message, true);
      approve.disabled = deny.disabled = !r.canDecide;
    }
  }
  approve.addEventListener("click", () => act("approve"));
  deny.addEventListener("click", () => act("deny"));
  reasonInput.addEventListener("keydown", (e) => { if (e.key === "Enter" && r.canDecide) act("approve"); });

  let hint = null;
  if (!r.canDecide) {
    if (me.role !== "approver") hint = "Auditors see requests but cannot decide on them.";
    else if (r.requester.user === me.user) hint = "This is your own request: someone else must decide.";
    else if ((r.approvals || []).some((a) => a.by.user === me.user)) hint = "You have approved; it waits for more approvers.";
    else hint = "You are not in one of this rule's approver groups (" + (r.approverGroups || []).join(", ") + ").";
  }
  const approvals = (r.approvals || []).map((a) => `${a.by.user}${a.reason ? " (" + a.reason + ")" : ""}`).join(", ");
  const what = [t.verb, t.subresource ? `${t.resource}/${t.subresource}` : t.resource].filter(Boolean).join(" ");
  return el("div", { class: "card" + (seen.has(r.id) ? "" : " fresh"), "data-request": r.id },
    el("div", { class: "req-top" },
      el("div", { class: "req-summary" }, r.summary),
      el("div", { class: "req-times", "data-expires": r.expiresAt, "data-created": r.createdAt },
        el("div", { class: "left" + (left < 60 ? " soon" : "") }, left > 0 ? dur(left) + " left" : "expired"),
        el("div", { class: "age" }, "held " + ago(r.createdAt, now)))),
    el("div", { class: "facts" },
      fact("Requester", el("span", { class: "who" }, r.requester.user)),
      fact("Rule", el("code", {}, r.rule || "\u2014")),
      r.kind === "grant" ? fact("Kind", "time-bound grant") : fact("Request", what || "\u2014"),
      t.namespace ? fact("Namespace", t.namespace) : null,
      t.name ? fact("Name", t.name) : null,
      t.command && t.command.length ? fact("Command", el("code", {}, t.command.join(" "))) : null,
      fact("Approvals", `${(r.approvals || []).length} of ${r.approvalsRequired}` + (approvals ? ": " + approvals : "")),
      r.heldOn ? fact("Held on", r.heldOn) : null),
    r.reason ? el("div", { class: "req-reason" }, r.reason) : null,
    el("div", { class: "decide" }, reasonInput, approve, deny),
    hint ? el("div", { class: "hint" }, hint) : null);
}

function decidedTable(items) {
  if (!items.length) return el("div", { class: "empty" }, "No decisions yet.");
  return el("table", { class: "grid", id: "decided-table" },
    el("thead", {}, el("tr", {}, el("th", {}, "When"), el("th", {}, "Request"), el("th", {}, "Requester"), el("th", {}, "Outcome"), el("th", {}, "Decided by"))),
    el("tbody", {}, items.map((r) => {
      const by = [];
      for (const a of r.approvals || []) by.push(el("div", {}, el("span", { class: "who" }, a.by.user), " approved", a.reason ? el("span", { class: "muted" }, ": " + a.reason) : null));
      if (r.denial) by.push(el("div", {}, el("span", { class: "who" }, r.denial.by.user), " denied", r.denial.reason ? el("span", { class: "muted" }, ": " + r.denial.reason) : null));
      if (!by.length) by.push(el("span", { class: "muted" }, r.state === "expired" ? "nobody, in time" : "\u2014"));
      const t = isZero(r.decidedAt) ? r.expiresAt : r.decidedAt;
      return el("tr", { "data-request": r.id },
        el("td", { class: "nowrap muted" }, when(t)),
        el("td", {}, el("code", {}, r.summary)),
        el("td", {}, r.requester.user),
        el("td", {}, el("span", { class: "badge " + r.state }, r.state)),
        el("td", {}, by));
    })));
}

// ---------------------------------------------------------------- sessions

function renderSessions() {
  const root = main();
  const params = new URLSearchParams(location.search);
  const field = (name, label, type, ph) => el("label", {}, label, el("input", { name, type: type || "text", placeholder: ph || "", value: params.get(name) || "" }));
  const form = el("form", { class: "search", id: "session-search" },
    field("user", "User", "text", "any user"), field("namespace", "Namespace", "text", "any"), field("pod", "Pod", "text", "any"),
    field("since", "Since", "text", "e.g. 24h or RFC 3339"), field("until", "Until", "text", "now"),
    el("button", { class: "primary", type: "submit" }, "Search"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const inp of form.querySelectorAll("input")) if (inp.value.trim()) q.set(inp.name, inp.value.trim());
    history.pushState(null, "", "/ui/sessions" + (q.toString() ? "?" + q : ""));
    load();
  });
  const liveBox = el("div", {}, el("div", { class: "loading" }, "Loading\u2026"));
  const recBox = el("div", {});
  root.replaceChildren(...pageHead("Sessions", "exec, attach and port-forward sessions through kubegate: watch or end the live ones, replay the recorded ones."),
    form, el("h2", {}, "Live now"), liveBox, el("h2", {}, "Recorded"), recBox);

  async function load() {
    let data;
    try { data = await api("/ui/api/sessions" + location.search); } catch (e) { liveBox.replaceChildren(el("div", { class: "empty" }, e.message)); return; }
    put(liveBox, liveTable(data.live, load), data.unreachable && data.unreachable.length ? el("p", { class: "hint" }, "Nodes that did not answer: " + data.unreachable.join(", ")) : null);
    put(recBox, recordedTable(data.recorded), data.problem ? el("p", { class: "hint" }, data.problem) : null);
  }
  load();
  const timer = setInterval(load, 5000);
  stopPage = () => clearInterval(timer);
}

function liveTable(items, reload) {
  if (!items.length) return el("div", { class: "empty" }, "No live sessions.");
  return el("table", { class: "grid", id: "live-table" },
    el("thead", {}, el("tr", {}, el("th", {}, "Started"), el("th", {}, "User"), el("th", {}, "Kind"), el("th", {}, "Pod"), el("th", {}, "Command"), el("th", {}, "Node"), el("th", {}, ""))),
    el("tbody", {}, items.map((s) => {
      const kill = el("button", { class: "deny small", type: "button", disabled: me.role !== "approver" }, "Kill");
      kill.addEventListener("click", async () => {
        if (!confirm(`End ${s.user}'s ${s.kind} session in ${s.namespace}/${s.pod}?`)) return;
        try { await api(`/ui/api/sessions/${encodeURIComponent(s.id)}/kill`, { method: "POST", body: "{}" }); toast("Session ended."); reload(); } catch (e) { toast(e.message, true); }
      });
      // A session is watched from its recording, on the disk of the node that carries it.
      const watch = s.kind === "portforward" ? null : (s.node || "kubegate") === me.node
        ? el("a", { class: "button small", href: "/ui/live/" + encodeURIComponent(s.id) }, "Watch")
        : el("span", { class: "muted", title: "Open the console of node " + s.node + " to watch it" }, "on " + s.node);
      return el("tr", { "data-session": s.id },
        el("td", { class: "nowrap" }, when(s.started)), el("td", { class: "who" }, s.user), el("td", {}, el("span", { class: "badge live" }, s.kind)),
        el("td", {}, `${s.namespace}/${s.pod}`), el("td", {}, el("code", {}, (s.command || []).join(" ") || "\u2014")),
        el("td", { class: "muted" }, s.node || ""), el("td", { class: "nowrap" }, watch, " ", kill));
    })));
}

function recordedTable(items) {
  if (!items.length) return el("div", { class: "empty" }, "No recordings match.");
  return el("table", { class: "grid", id: "recorded-table" },
    el("thead", {}, el("tr", {}, el("th", {}, "Started"), el("th", {}, "User"), el("th", {}, "Pod"), el("th", {}, "Command"), el("th", {}, "Length"), el("th", {}, "Exit"))),
    el("tbody", {}, items.map((r) => {
      const open = () => navigate("/ui/sessions/" + encodeURIComponent(r.id));
      const exit = r.live ? el("span", { class: "badge live" }, "live") : r.exitCode === undefined || r.exitCode === null ? el("span", { class: "muted" }, "\u2014")
        : el("span", { class: "badge " + (r.exitCode === 0 ? "ok" : "bad") }, String(r.exitCode));
      return el("tr", { class: "clickable", "data-recording": r.id, onclick: open },
        el("td", { class: "nowrap" }, when(r.start)), el("td", { class: "who" }, r.user),
        el("td", {}, `${r.namespace}/${r.pod}`, r.container ? el("span", { class: "muted" }, " (" + r.container + ")") : null),
        el("td", {}, el("code", {}, r.command || r.kind)), el("td", { class: "nowrap" }, r.live ? "\u2014" : dur(r.duration)), el("td", {}, exit));
    })));
}

// ---------------------------------------------------------------- replay

async function renderRecording(id) {
  const root = main();
  root.replaceChildren(el("div", { class: "loading" }, "Loading the recording\u2026"));
  let d;
  try { d = await api("/ui/api/recordings/" + encodeURIComponent(id)); } catch (e) { root.replaceChildren(el("div", { class: "empty" }, e.message)); return; }
  const r = d.recording;
  const playerBox = el("div", { id: "player" });
  const speed = el("select", { id: "speed", "aria-label": "Speed" }, ["0.5", "1", "2", "4", "8"].map((s) => el("option", { value: s, selected: s === "1" }, s + "\u00d7")));
  const markerList = el("ul", { class: "plain markers", id: "markers" });
  const ev = d.session ? d.session.annotations : {};
  const exit = r.exitCode === undefined || r.exitCode === null ? "\u2014" : String(r.exitCode);
  put(root,
    el("a", { class: "back", href: "/ui/sessions" }, "\u2190 All sessions"),
    ...pageHead(`${r.user} in ${r.namespace}/${r.pod}`, `${r.kind} ${r.command ? "\u201c" + r.command + "\u201d" : ""} \u00b7 started ${when(r.start)} \u00b7 ${dur(r.duration)}`),
    el("div", { class: "replay" },
      el("div", {}, el("div", { class: "player-wrap" }, playerBox),
        el("div", { class: "player-bar" }, el("label", {}, "Speed ", speed), el("span", {}, "Space pauses; \u2190 \u2192 seek; [ ] jump between markers."))),
      el("div", { class: "side" },
        el("div", { class: "card" }, el("h3", {}, "Session"), el("dl", { class: "kv", id: "session-facts" },
          el("dt", {}, "User"), el("dd", {}, r.user),
          el("dt", {}, "Pod"), el("dd", {}, `${r.namespace}/${r.pod}` + (r.container ? ` (${r.container})` : "")),
          el("dt", {}, "Command"), el("dd", {}, el("code", {}, r.command || "\u2014")),
          el("dt", {}, "Exit code"), el("dd", {}, el("span", { class: "badge " + (exit === "0" ? "ok" : exit === "\u2014" ? "" : "bad"), id: "exit-code" }, exit)),
          el("dt", {}, "Decision"), el("dd", {}, ev.decision ? el("span", { class: "badge " + ev.decision }, ev.decision) : "\u2014", ev.rule ? el("span", { class: "muted" }, " by rule " + ev.rule) : null),
          el("dt", {}, "Bytes in"), el("dd", {}, ev["session-bytes-stdin"] || "\u2014"),
          el("dt", {}, "Bytes out"), el("dd", {}, ev["session-bytes-stdout"] || "\u2014", ev["session-bytes-stderr"] ? ` (+${ev["session-bytes-stderr"]} stderr)` : ""),
          el("dt", {}, "Protocol"), el("dd", {}, ev["session-protocol"] || "\u2014"),
          ev["session-error"] ? [el("dt", {}, "Ended by"), el("dd", {}, ev["session-error"])] : null)),
        el("div", { class: "card" }, el("h3", {}, "Approvals"), approvalsList(d, ev)),
        el("div", { class: "card" }, el("h3", {}, "Markers"), markerList),
        d.problem ? el("div", { class: "hint" }, d.problem) : null)));

  let player = null;
  async function create(at) {
    const opts = { speed: Number(speed.value), idleTimeLimit: 2, fit: "width", terminalFontSize: "14px", theme: "asciinema", startAt: at || 0, autoPlay: at > 0 };
    if (player) player.dispose();
    playerBox.replaceChildren();
    player = AsciinemaPlayer.create("/ui/api/recordings/" + encodeURIComponent(id) + "/cast", playerBox, opts);
    window.kubegatePlayer = player;
    playerBox.dataset.state = "ready";
    player.addEventListener("play", () => { playerBox.dataset.state = "playing"; });
    player.addEventListener("pause", () => { playerBox.dataset.state = "paused"; });
    player.addEventListener("ended", () => { playerBox.dataset.state = "ended"; });
  }
  speed.addEventListener("change", () => { const at = player ? player.getCurrentTime() : 0; create(at); });
  create(0);
  // Markers, for the list beside the player.
  try {
    const text = await (await fetch("/ui/api/recordings/" + encodeURIComponent(id) + "/cast", { credentials: "same-origin" })).text();
    const marks = text.split("\n").slice(1).filter(Boolean).map((l) => JSON.parse(l)).filter((e) => e[1] === "m");
    markerList.replaceChildren(...(marks.length ? marks.map((m) => el("li", {}, el("button", { type: "button", onclick: () => { player.seek(m[0]); player.play(); } }, `${m[0].toFixed(1)}s  ${m[2]}`)))
      : [el("li", { class: "muted" }, "No commands were typed.")]));
  } catch (e) { markerList.replaceChildren(el("li", { class: "muted" }, "Markers unavailable.")); }
  stopPage = () => { if (player) player.dispose(); };
}

function approvalsList(d, ev) {
  if (!ev["access-request"]) return el("p", { class: "muted" }, "Allowed by policy without an approval.");
  const items = d.approvals.filter((a) => (a.annotations.event || "").startsWith("api.request."));
  return el("ul", { class: "plain", id: "approvals" },
    el("li", {}, "Access request ", el("code", {}, ev["access-request"]), ev["hold-outcome"] ? [" \u00b7 ", el("span", { class: "badge " + ev["hold-outcome"] }, ev["hold-outcome"])] : null),
    ev["approved-by"] ? el("li", {}, "Approved by ", el("span", { class: "who" }, ev["approved-by"]), ev["hold-wait"] ? el("span", { class: "muted" }, " after " + ev["hold-wait"]) : null) : null,
    items.map((a) => el("li", {}, el("span", { class: "muted" }, when(a.time) + " "), el("span", { class: "who" }, a.user), " ", ({ approve: "approved", deny: "denied" })[(a.annotations.event || "").replace("api.request.", "")] || a.annotations.event,
      a.annotations.message ? el("span", { class: "muted" }, ": " + a.annotations.message) : null)));
}

// ---------------------------------------------------------------- live

function renderLive(id) {
  const root = main();
  const playerBox = el("div", { id: "player" });
  const kill = el("button", { class: "deny", type: "button", disabled: me.role !== "approver" }, "Kill session");
  const banner = el("div", { class: "banner", id: "live-banner", hidden: true });
  kill.addEventListener("click", async () => {
    if (!confirm("End this session now?")) return;
    try {
      const res = await api(`/ui/api/sessions/${encodeURIComponent(id)}/kill`, { method: "POST", body: "{}" });
      banner.textContent = "Session ended: " + res.reason + ".";
      banner.hidden = false;
      kill.disabled = true;
    } catch (e) { toast(e.message, true); }
  });
  put(root, el("a", { class: "back", href: "/ui/sessions" }, "\u2190 All sessions"),
    ...pageHead("Watching a live session", "Read-only: you see what the user sees, as it happens. Nothing you type reaches the pod.", kill),
    banner, el("div", { class: "player-wrap live" }, playerBox));
  const player = AsciinemaPlayer.create({ driver: "eventsource", url: "/ui/api/live/" + encodeURIComponent(id), bufferTime: 0 }, playerBox, { autoPlay: true, fit: false, terminalFontSize: "14px" });
  window.kubegatePlayer = player;
  stopPage = () => player.dispose();
}

// ---------------------------------------------------------------- timeline

async function renderTimeline() {
  const root = main();
  const params = new URLSearchParams(location.search);
  const cred = params.get("credential");
  if (!cred) {
    const form = el("form", { class: "search" }, el("label", {}, "User", el("input", { name: "user", value: params.get("user") || "", placeholder: "any user" })), el("button", { class: "primary", type: "submit" }, "Filter"));
    const box = el("div", {}, el("div", { class: "loading" }, "Reading the audit log\u2026"));
    form.addEventListener("submit", (e) => { e.preventDefault(); const u = form.querySelector("input").value.trim(); history.pushState(null, "", "/ui/timeline" + (u ? "?user=" + encodeURIComponent(u) : "")); renderTimeline(); });
    root.replaceChildren(...pageHead("API timeline", "Each agent session is the run of calls made with one token. Pick one to see its calls in order."), form, el("h2", {}, "Sessions"), box);
    let d;
    try { d = await api("/ui/api/timeline" + (params.get("user") ? "?user=" + encodeURIComponent(params.get("user")) : "")); } catch (e) { box.replaceChildren(el("div", { class: "empty" }, e.message)); return; }
    if (!d.sessions.length) { box.replaceChildren(el("div", { class: "empty" }, "No calls in the audit log.")); return; }
    box.replaceChildren(el("table", { class: "grid", id: "credential-table" },
      el("thead", {}, el("tr", {}, el("th", {}, "User"), el("th", {}, "Token"), el("th", {}, "First call"), el("th", {}, "Last call"), el("th", {}, "Calls"), el("th", {}, "Not allowed"))),
      el("tbody", {}, d.sessions.map((s) => el("tr", { class: "clickable", onclick: () => navigate("/ui/timeline?credential=" + encodeURIComponent(s.credential)) },
        el("td", { class: "who" }, s.user), el("td", {}, el("code", {}, s.credential.slice(0, 19) + "\u2026")),
        el("td", { class: "nowrap" }, when(s.first)), el("td", { class: "nowrap" }, when(s.last)), el("td", {}, String(s.calls)),
        el("td", {}, s.refused ? el("span", { class: "badge bad" }, String(s.refused)) : "0"))))));
    return;
  }
  root.replaceChildren(el("a", { class: "back", href: "/ui/timeline" }, "\u2190 All sessions"), el("div", { class: "loading" }, "Loading\u2026"));
  let d;
  try { d = await api("/ui/api/timeline?credential=" + encodeURIComponent(cred)); } catch (e) { root.replaceChildren(el("div", { class: "empty" }, e.message)); return; }
  const bodyBox = (label, text) => {
    if (!text) return null;
    let pretty = text;
    try { pretty = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { /* not JSON: as recorded */ }
    return el("details", { class: "body" }, el("summary", {}, label), el("pre", { class: "json" }, pretty));
  };
  root.replaceChildren(el("a", { class: "back", href: "/ui/timeline" }, "\u2190 All sessions"),
    ...pageHead("API timeline", `${d.calls.length} calls made with token ${cred.slice(0, 19)}\u2026; bodies are shown masked, as the audit log keeps them.`),
    el("table", { class: "grid", id: "timeline-table" },
      el("thead", {}, el("tr", {}, el("th", {}, "At"), el("th", {}, "Verb"), el("th", {}, "Resource"), el("th", {}, "Object"), el("th", {}, "Decision"), el("th", {}, "Status"), el("th", {}, "Bodies"))),
      el("tbody", {}, d.calls.map((c) => el("tr", { "data-audit-id": c.auditID },
        el("td", { class: "nowrap mono" }, "+" + c.offset.toFixed(3) + "s"), el("td", {}, el("code", {}, c.verb)), el("td", {}, el("code", {}, c.resource)),
        el("td", {}, el("code", {}, c.object)),
        el("td", {}, el("span", { class: "badge " + c.decision }, c.decision), c.note ? el("div", { class: "muted" }, c.note) : null),
        el("td", {}, el("span", { class: "badge " + (c.code >= 200 && c.code < 300 ? "ok" : c.code >= 400 ? "bad" : "") }, String(c.code))),
        el("td", {}, bodyBox("request", c.request), bodyBox("response", c.response), c.bodiesTruncated ? el("div", { class: "muted" }, "cut to 16 KiB") : null,
          !c.request && !c.response ? el("span", { class: "muted" }, "\u2014") : null))))));
}

// ---------------------------------------------------------------- routing

function navigate(path) {
  history.pushState(null, "", path);
  route();
}

function route() {
  stopPage();
  stopPage = () => {};
  const p = location.pathname;
  let nav = "approvals";
  let m;
  if (p === "/ui/" || p === "/ui/approvals") renderApprovals();
  else if (p === "/ui/sessions") { nav = "sessions"; renderSessions(); }
  else if ((m = p.match(/^\/ui\/sessions\/([^/]+)$/))) { nav = "sessions"; renderRecording(decodeURIComponent(m[1])); }
  else if ((m = p.match(/^\/ui\/live\/([^/]+)$/))) { nav = "sessions"; renderLive(decodeURIComponent(m[1])); }
  else if (p === "/ui/timeline") { nav = "timeline"; renderTimeline(); }
  else main().replaceChildren(el("div", { class: "empty" }, "No such page."));
  for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("active", a.dataset.nav === nav);
  document.title = document.querySelector(`[data-nav="${nav}"]`).textContent.replace(/\d+$/, "").trim() + " \u00b7 kubegate";
}

document.addEventListener("click", (e) => {
  const a = e.target.closest("a[href^='/ui/']");
  if (!a || e.metaKey || e.ctrlKey || e.shiftKey || a.target) return;
  e.preventDefault();
  navigate(a.getAttribute("href"));
});
window.addEventListener("popstate", route);

async function start() {
  me = await api("/ui/api/me");
  document.getElementById("me-name").textContent = me.user;
  const role = document.getElementById("me-role");
  role.textContent = me.role;
  role.classList.add(me.role);
  document.getElementById("logout").addEventListener("click", async () => {
    try { await api("/ui/logout", { method: "POST", body: "{}" }); } catch (e) { /* signed out anyway */ }
    location.href = "/ui/login";
  });
  route();
}
start();
