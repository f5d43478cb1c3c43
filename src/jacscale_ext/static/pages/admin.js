// The admin console: users (search, disable/enable, role, forced password reset),
// this worker's request/walker metrics, recent errors and the redacted configuration.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const { api, el } = Pages;

  function when(ts) { return ts ? new Date(ts * 1000).toISOString().replace("T", " ").slice(0, 19) : ""; }

  async function act(fn, okText) {
    const out = $("users-status");
    try {
      const result = await fn();
      out.textContent = typeof okText === "function" ? okText(result) : okText;
      await loadUsers();
    } catch (err) {
      out.textContent = err.message;
    }
  }

  function userRow(u) {
    const id = encodeURIComponent(u.user_id);
    const toggle = el("button", { class: "toggle-disabled", text: u.disabled ? "Enable" : "Disable" });
    toggle.addEventListener("click", () => act(
      () => api("PATCH", "admin/api/users/" + id, { disabled: !u.disabled }),
      (u.email || u.username) + (u.disabled ? " enabled" : " disabled")));
    const role = el("button", { class: "toggle-role", text: u.role === "admin" ? "Make user" : "Make admin" });
    role.addEventListener("click", () => act(
      () => api("PATCH", "admin/api/users/" + id, { role: u.role === "admin" ? "user" : "admin" }),
      "role changed"));
    const reset = el("button", { class: "reset-password", text: "Reset password" });
    reset.addEventListener("click", () => {
      if (!confirm("End every session of " + (u.email || u.username) + " and force a new password?")) return;
      act(() => api("POST", "admin/api/users/" + id + "/reset-password"),
        (r) => r.email_sent ? "Reset link emailed." : "Reset token (give it to the user): " + r.reset_token);
    });
    return el("tr", { "data-user-id": u.user_id, "data-email": u.email || "" },
      el("td", { text: u.email || "" }), el("td", { text: u.username || "" }),
      el("td", { class: "role", text: u.role }),
      el("td", { class: "status", text: u.disabled ? "disabled" : "active" }),
      el("td", { text: when(u.created_at) }), el("td", {}, toggle, role, reset));
  }

  async function loadUsers() {
    const q = $("search").value.trim();
    const answer = await api("GET", "admin/api/users?limit=200&q=" + encodeURIComponent(q));
    $("users").tBodies[0].replaceChildren(...answer.users.map(userRow));
    if (!$("users-status").textContent) $("users-status").textContent = answer.total + " users";
  }

  function rows(table, items, cells) {
    $(table).tBodies[0].replaceChildren(...items.map((it) => el("tr", {}, ...cells(it).map((c) => el("td", { text: String(c) })))));
  }

  async function loadMetrics() {
    const m = await api("GET", "admin/api/metrics");
    rows("requests", m.requests, (r) => [r.method, r.path, r.count, r.failures, r.mean_ms, r.max_ms]);
    rows("walkers", m.walkers, (w) => [w.name, w.count, w.failures, w.mean_ms, w.max_ms]);
  }

  async function loadErrors() {
    const e = await api("GET", "admin/api/errors");
    rows("errors", e.errors, (x) => [when(x.at), x.request_id, x.method, x.path, x.status]);
  }

  async function loadJobs() {
    const answer = await api("GET", "admin/api/jobs");
    rows("jobs", answer.jobs, (j) => [
      j.walker_or_function, j.trigger + " " + (j.interval !== null ? j.interval + " s" : j.cron || j.date || ""),
      j.static ? "(program)" : j.created_by, j.next_run_at || "", j.last_run_at || "",
      j.last_status || "", j.run_count]);
    $("jobs-status").textContent = answer.available ? answer.jobs.length + " jobs" : "No job store: the scheduler is unavailable.";
  }

  async function loadConfig() {
    $("config").textContent = JSON.stringify(await api("GET", "admin/api/config"), null, 2);
  }

  const loaders = { users: loadUsers, metrics: loadMetrics, errors: loadErrors, jobs: loadJobs, config: loadConfig };

  async function showTab(name) {
    for (const b of document.querySelectorAll("nav.tabs button")) b.classList.toggle("active", b.dataset.tab === name);
    for (const s of document.querySelectorAll("section.tab")) s.hidden = s.id !== "tab-" + name;
    await loaders[name]();
  }

  async function start() {
    try {
      await loadUsers();
    } catch (err) {
      $("signin").hidden = false;
      $("signin-error").textContent = err.status === 403 ? "This account is not an admin." : err.message;
      return;
    }
    $("console").hidden = false;
    for (const b of document.querySelectorAll("nav.tabs button")) b.addEventListener("click", () => showTab(b.dataset.tab));
    $("search-form").addEventListener("submit", (ev) => { ev.preventDefault(); $("users-status").textContent = ""; loadUsers(); });
    document.body.dataset.ready = "true";
  }

  Pages.signIn(start);
})();
