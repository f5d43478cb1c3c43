// Shared by /graph and /admin: the bearer token (kept in this tab's sessionStorage),
// sign-in, and JSON calls to the API. URLs are relative, so a mounted app works too.
"use strict";

const Pages = (() => {
  const KEY = "jacscale.token";

  function token() { return sessionStorage.getItem(KEY) || ""; }
  function setToken(value) {
    if (value) sessionStorage.setItem(KEY, value); else sessionStorage.removeItem(KEY);
  }

  // Base of the app: the page is served at <base>graph or <base>admin.
  const base = new URL(".", document.baseURI.replace(/\/(graph|admin)\/?(\?.*)?(#.*)?$/, "/$1"));

  async function api(method, path, body) {
    const headers = {};
    if (token()) headers.Authorization = "Bearer " + token();
    const init = { method, headers };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const resp = await fetch(new URL(path, base), init);
    const text = await resp.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = { raw: text }; }
    if (!resp.ok) {
      const err = new Error((data && data.error && data.error.message) || resp.status + " " + resp.statusText);
      err.status = resp.status;
      err.data = data;
      throw err;
    }
    return data;
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("data-")) node.setAttribute(k, v);
      else node[k] = v;
    }
    for (const child of children) node.append(child);
    return node;
  }

  // Wire the sign-in form; `onReady(me)` runs once a token works.
  function signIn(onReady) {
    const $ = (id) => document.getElementById(id);
    const section = $("signin"), error = $("signin-error"), out = $("signout");

    async function tryToken() {
      try {
        const me = await api("GET", "user/me");
        section.hidden = true;
        out.hidden = false;
        $("who").textContent = me.email || me.username || me.user_id;
        await onReady(me);
      } catch (err) {
        setToken("");
        section.hidden = false;
        error.textContent = err.status === 401 ? "Session expired: sign in again." : err.message;
      }
    }

    $("signin-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      error.textContent = "";
      const identity = $("identity").value.trim();
      const body = { password: $("password").value };
      body[identity.includes("@") ? "email" : "username"] = identity;
      try {
        const session = await api("POST", "user/login", body);
        setToken(session.access_token);
        $("password").value = "";
        await tryToken();
      } catch (err) {
        error.textContent = err.message;
      }
    });
    const tokenForm = $("token-form");
    if (tokenForm) {
      tokenForm.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        setToken($("token").value.trim());
        await tryToken();
      });
    }
    out.addEventListener("click", () => { setToken(""); location.reload(); });
    if (token()) tryToken();
  }

  return { api, el, signIn, setToken, token };
})();
