// Runs jaclang's client runtime (compiled to an ES module by `jac jac2js`) under
// Node against a live jacscale server, the way a jac-client frontend calls it.
//
//   node client_runtime_run.mjs <client_runtime.mjs> <base url> <email> <username>
//
// Prints one JSON object: what each call returned, in order, for the pytest test
// to check. The browser pieces the runtime touches are shimmed: localStorage
// (where it keeps the token) and window.location.reload (called on a 401).
import { pathToFileURL } from "node:url";

const [modulePath, baseUrl, email, username] = process.argv.slice(2);
const PASSWORD = "client-pw-123";

const stored = new Map();
globalThis.localStorage = {
  getItem: (key) => (stored.has(key) ? stored.get(key) : null),
  setItem: (key, value) => stored.set(key, String(value)),
  removeItem: (key) => stored.delete(key),
};
let reloads = 0;
globalThis.window = globalThis;
globalThis.location = { reload: () => { reloads += 1; } };
globalThis.__JAC_API_BASE_URL__ = baseUrl;

const jac = await import(pathToFileURL(modulePath).href);
const out = {};
const step = async (name, fn) => {
  try {
    out[name] = { value: await fn() };
  } catch (err) {
    out[name] = { thrown: String(err && err.message ? err.message : err) };
  }
};

await step("logged_in_at_start", () => jac.jacIsLoggedIn());
// jacSignup's two forms: a username and a password, or identities and a credential.
await step("signup_username", () => jac.jacSignup(username, PASSWORD));
await step("signup_identities", () =>
  jac.jacSignup([{ type: "email", value: email }], { type: "password", password: PASSWORD },
                { nickname: "ada" }));
await step("signup_again", () => jac.jacSignup([{ type: "email", value: email }], PASSWORD));
await step("login_wrong_password", () => jac.jacLogin({ type: "email", value: email }, "nope-nope"));
await step("logged_in_after_wrong", () => jac.jacIsLoggedIn());
await step("login", () => jac.jacLogin({ type: "email", value: email }, PASSWORD));
await step("logged_in", () => jac.jacIsLoggedIn());
await step("token", () => localStorage.getItem("jac_token"));
// A field the walker does not declare, and a number as a string: as jac-scale takes them.
await step("spawn_add", () => jac.jacSpawn("add_note", "", { title: "first", stars: "2", color: "red" }));
await step("spawn_add_second", () => jac.jacSpawn("add_note", "", { title: "second" }));
await step("spawn_list", () => jac.jacSpawn("list_notes", "", {}));
const noteId = out.spawn_add.value && out.spawn_add.value.reports
  ? out.spawn_add.value.reports[0]._jac_id : "";
await step("spawn_on_node", () => jac.jacSpawn("star_note", noteId, {}));
await step("call_protected", () => jac.__jacCallFunction("count_notes", { factor: 10 }));
await step("call_public", () => jac.__jacCallFunction("add", { a: 2, b: "40" }));
await step("call_bad_input", () => jac.__jacCallFunction("add", { a: 2, b: "forty" }));
await step("logout", () => jac.jacLogout());
await step("logged_in_after_logout", () => jac.jacIsLoggedIn());
// Without the token a protected walker answers 401: the runtime drops the token
// and reloads the page.
await step("spawn_logged_out", () => jac.jacSpawn("list_notes", "", {}));
await step("reloads", () => reloads);
await step("login_username", () => jac.jacLogin(username, PASSWORD));
await step("spawn_list_as_username", () => jac.jacSpawn("list_notes", "", {}));
// The plain-string form sends {"type": "username", "value": <the email>}: jac-scale
// finds a user by any identity value, so this logs in the email account.
await step("logout_again", () => jac.jacLogout());
await step("login_email_as_string", () => jac.jacLogin(email, PASSWORD));
await step("spawn_list_as_email", () => jac.jacSpawn("list_notes", "", {}));

process.stdout.write(JSON.stringify(out) + "\n");
