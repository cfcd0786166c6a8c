// The log-in and claim screens, and starting and ending a session.
import { api, session, setToken, setUnauthorizedHandler } from "./api.js";
import { $, h, errText, field } from "./dom.js";
import { S, loadSeen } from "./state.js";
import { syncLoop } from "./sync.js";
import { refreshStatus, pollStatus, setBanner } from "./node.js";
import { route } from "./router.js";
import { renderRoomList } from "./roomlist.js";
import { startShell } from "./shell.js";

// ---------- auth screens ----------

export async function showAuth(message) {
  $("app").hidden = true;
  const root = $("auth");
  root.hidden = false;
  root.replaceChildren(h("h1", {}, "parley"), h("p", { class: "muted" }, "Checking this node…"));
  let claim = false;
  try {
    // The node says whether it has its owner yet; asking /register would
    // leave a 401 in the console.
    claim = !(await api.status()).claimed;
  } catch (e) {
    // 503: the node is still starting; it says when to ask again.
    if (e.status === 503) {
      setTimeout(() => showAuth(message), e.body.retry_after_ms || 500);
      return;
    }
    root.replaceChildren(h("h1", {}, "parley"), h("p", { class: "error", role: "alert" }, errText(e)),
      h("button", { type: "button", onclick: () => showAuth() }, "Try again"));
    return;
  }
  // `parley run` prints the app's URL with the claim code: #/claim/CODE.
  const claimMatch = location.hash.match(/^#\/claim\/([^/?#]+)$/);
  const code = claim ? field("code", "Claim code", {
    required: true, autocomplete: "off", autocapitalize: "off", spellcheck: "false",
    value: claimMatch ? decodeURIComponent(claimMatch[1]) : "",
    note: "Printed by parley run, and kept in the file claim-code in its data folder.",
  }) : null;
  const err = h("p", { class: "error", role: "alert" }, message || "");
  const user = field("username", "User name", { autocomplete: "username", required: true, autocapitalize: "off", spellcheck: "false", pattern: claim ? "[a-z0-9._=\\/\\-]+" : null, title: claim ? "lower-case letters, digits and . _ = - /" : null });
  const pass = field("password", "Password", { type: "password", autocomplete: claim ? "new-password" : "current-password", required: true, minlength: claim ? 8 : null });
  const submit = h("button", { type: "submit" }, claim ? "Claim this node" : "Log in");
  const form = h("form", {}, code, user, pass, claim ? field("password2", "Repeat the password", { type: "password", autocomplete: "new-password", required: true }) : null, err, submit);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const fd = new FormData(form);
    err.textContent = "";
    if (claim && fd.get("password") !== fd.get("password2")) {
      err.textContent = "The passwords differ.";
      return;
    }
    submit.disabled = true;
    submit.textContent = claim ? "Claiming…" : "Logging in…";
    try {
      const name = String(fd.get("username")).trim().replace(/^@/, "").split(":")[0];
      const res = claim ? await api.register(name, fd.get("password"), String(fd.get("code")).trim()) : await api.login(name, fd.get("password"));
      loggedIn({ user_id: res.user_id, access_token: res.access_token, device_id: res.device_id });
    } catch (e) {
      err.textContent = errText(e);
      submit.disabled = false;
      submit.textContent = claim ? "Claim this node" : "Log in";
    }
  });
  root.replaceChildren(
    h("h1", {}, claim ? "Claim this node" : "Log in to parley"),
    h("p", { class: "muted" }, claim
      ? "This parley node has no owner yet. Give its claim code, then choose a user name and password: the first account owns the node."
      : "Log in with your account on this node."),
    form,
  );
  (claimMatch ? user[1] : form.querySelector("input")).focus();
}

function loggedIn(s) {
  // The claim code is spent: keep it out of the address bar and history.
  if (location.hash.startsWith("#/claim/")) history.replaceState(null, "", "#/");
  S.me = s;
  session.save(s);
  setToken(s.access_token);
  startApp();
}

export async function logout() {
  S.syncAbort?.abort();
  S.syncing = false;
  try {
    await api.logout();
  } catch {
    /* the token may already be gone */
  }
  resetSession();
  showAuth();
}

export function resetSession() {
  session.clear();
  setToken("");
  S.me = null;
  S.rooms.clear();
  S.invites.clear();
  S.since = null;
  S.current = null;
  S.filterId = null;
  S.waitingFor.clear();
  pollStatus(false);
  setBanner("");
}

setUnauthorizedHandler(() => {
  if (!S.me) return;
  S.syncAbort?.abort();
  S.syncing = false;
  resetSession();
  showAuth("You were logged out. Please log in again.");
});

// ---------- starting the app ----------

export function startApp() {
  $("auth").hidden = true;
  $("app").hidden = false;
  $("me-btn").textContent = S.me.user_id;
  loadSeen();
  refreshStatus();
  pollStatus();
  renderRoomList();
  startShell();
  route();
  syncLoop();
}
