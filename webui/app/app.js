// parley's web app: plain ES modules, no build step.
import { api, request, session, setToken, setUnauthorizedHandler, APIError } from "./api.js";
import { qrSVG } from "./qr.js";

// ---------- small DOM helpers ----------

const $ = (id) => document.getElementById(id);

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

// kids flattens and drops empty children, for append/replaceChildren.
const kids = (...list) => list.flat(3).filter((k) => k !== null && k !== undefined && k !== false);

function toast(msg) {
  const t = h("div", { class: "toast", role: "status" }, msg);
  document.body.append(t);
  setTimeout(() => t.remove(), 2600);
}

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const ta = h("textarea", { "aria-hidden": "true", style: "position:fixed;opacity:0" });
    ta.value = text;
    document.body.append(ta);
    ta.select();
    document.execCommand("copy");
    ta.remove();
  }
  toast("Copied");
}

function copyRow(value, label) {
  const input = h("input", { readonly: true, "aria-label": label });
  input.value = value;
  input.addEventListener("focus", () => input.select());
  return h("div", { class: "copy-row" }, input, h("button", { type: "button", class: "secondary small", onclick: () => copyText(value), "aria-label": "Copy " + label }, "Copy"));
}

function errText(e) {
  if (e instanceof APIError) return e.message + (e.errcode ? ` (${e.errcode})` : "");
  if (e?.name === "TypeError") return "Cannot reach this node. Is parley still running?";
  return e?.message || String(e);
}

// openDialog shows a modal <dialog>. Escape closes it (the browser does
// that); the form inside submits on Enter. Returns the dialog element.
function openDialog(title, build, { onClose } = {}) {
  const dlg = h("dialog", { "aria-label": title });
  const opener = document.activeElement;
  let done = false;
  const finish = () => {
    if (done) return;
    done = true;
    if (dlg.open) dlg.close();
    dlg.remove();
    onClose?.();
    if (opener && opener.isConnected && !document.querySelector("dialog[open]")) opener.focus({ preventScroll: true });
  };
  const close = finish;
  const body = h("div", { class: "dlg" }, h("h2", {}, title));
  dlg.append(body);
  build(body, close, dlg);
  dlg.addEventListener("close", finish);
  document.body.append(dlg);
  dlg.showModal();
  const first = dlg.querySelector("[autofocus]") || dlg.querySelector("input:not([readonly]), textarea, select");
  first?.focus();
  return dlg;
}

function formDialog(title, fields, submitLabel, onSubmit, { note } = {}) {
  return openDialog(title, (body, close) => {
    const err = h("p", { class: "error", role: "alert" });
    const submit = h("button", { type: "submit" }, submitLabel);
    const form = h("form", {}, note ? h("p", { class: "muted" }, note) : null, ...fields, err,
      h("div", { class: "dlg-actions" }, h("button", { type: "button", class: "secondary", onclick: close }, "Cancel"), submit));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      err.textContent = "";
      submit.disabled = true;
      try {
        await onSubmit(new FormData(form), close);
      } catch (e) {
        err.textContent = errText(e);
      } finally {
        submit.disabled = false;
      }
    });
    body.append(form);
  });
}

const field = (name, label, attrs = {}) => {
  const id = "f-" + name + "-" + Math.random().toString(36).slice(2, 7);
  const input = attrs.multiline ? h("textarea", { id, name, rows: 3, ...attrs, multiline: null }) : h("input", { id, name, ...attrs });
  if (attrs.value !== undefined) input.value = attrs.value;
  return [h("label", { for: id }, label), input, attrs.note ? h("p", { class: "field-note" }, attrs.note) : null];
};

// ---------- time formatting ----------

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: "long", year: "numeric", month: "long", day: "numeric" });
const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
function dayLabel(ts) {
  const d = new Date(ts);
  const today = new Date();
  const yest = new Date(Date.now() - 86400000);
  if (d.toDateString() === today.toDateString()) return "Today";
  if (d.toDateString() === yest.toDateString()) return "Yesterday";
  return dayFmt.format(d);
}
function relTime(ms) {
  const s = Math.round(ms / 1000);
  if (s < 90) return `${s} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  if (s < 129600) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} days`;
}

// ---------- state ----------

const S = {
  me: null, // {user_id, access_token, device_id}
  rooms: new Map(), // roomId -> Room
  invites: new Map(), // roomId -> {id, state: Map}
  current: null,
  since: null,
  filterId: null,
  syncing: false,
  syncAbort: null,
  seen: {}, // roomId -> origin_server_ts of the last event the user saw
  status: null,
  membersOpen: window.matchMedia("(min-width: 1100px)").matches,
  waitingFor: new Set(), // rooms we just joined/created and want to open
};

class Room {
  constructor(id) {
    this.id = id;
    this.state = new Map(); // "type\u0000stateKey" -> event
    this.events = []; // timeline, oldest first
    this.ids = new Set();
    this.prevBatch = null;
    this.atStart = false;
    this.loadingOlder = false;
    this.pending = []; // {txnId, content, status, eventId, error}
    this.membersFetched = false;
  }
  st(type, key = "") {
    return this.state.get(type + "\u0000" + key)?.content;
  }
  applyState(ev) {
    if (ev.state_key === undefined || ev.state_key === null) return;
    this.state.set(ev.type + "\u0000" + ev.state_key, ev);
  }
  members(filter = ["join", "invite"]) {
    const out = [];
    for (const ev of this.state.values()) {
      if (ev.type === "m.room.member" && filter.includes(ev.content?.membership)) out.push(ev);
    }
    return out;
  }
  displayName(userId) {
    const m = this.st("m.room.member", userId);
    return m?.displayname || userId;
  }
  powerLevels() {
    const pl = this.st("m.room.power_levels") || {};
    return pl;
  }
  creators() {
    // Room versions 12 and later give the creators unlimited power.
    const create = this.state.get("m.room.create\u0000");
    if (!create) return [];
    const v = parseInt(create.content?.room_version || "1", 10);
    if (!(v >= 12)) return [];
    return [create.sender, ...(create.content?.additional_creators || [])];
  }
  levelOf(userId) {
    if (this.creators().includes(userId)) return Infinity;
    const pl = this.powerLevels();
    if (pl.users && userId in pl.users) return pl.users[userId];
    if (!this.st("m.room.power_levels")) {
      // without a power levels event the creator has 100
      const create = this.state.get("m.room.create\u0000");
      return create && create.sender === userId ? 100 : 0;
    }
    return pl.users_default ?? 0;
  }
  required(action) {
    const pl = this.powerLevels();
    const dflt = { kick: 50, ban: 50, invite: 0, redact: 50 };
    if (action in dflt) return pl[action] ?? dflt[action];
    // a state event type
    return pl.events?.[action] ?? pl.state_default ?? 50;
  }
  can(action) {
    return S.me && this.levelOf(S.me.user_id) >= this.required(action);
  }
  name() {
    const n = this.st("m.room.name")?.name;
    if (n) return n;
    const others = this.members(["join", "invite"]).filter((m) => m.state_key !== S.me?.user_id);
    if (others.length) {
      const names = others.slice(0, 3).map((m) => m.content.displayname || m.state_key);
      return names.join(", ") + (others.length > 3 ? ` and ${others.length - 3} more` : "");
    }
    return "Empty room";
  }
  lastMessage() {
    for (let i = this.events.length - 1; i >= 0; i--) {
      const e = this.events[i];
      if (e.type === "m.room.message") return e;
    }
    return null;
  }
  lastTs() {
    const e = this.events[this.events.length - 1];
    return e ? e.origin_server_ts : 0;
  }
  unread() {
    const seen = S.seen[this.id] || 0;
    let n = 0;
    for (const e of this.events) {
      if (e.type === "m.room.message" && e.sender !== S.me?.user_id && e.origin_server_ts > seen && e.content?.body !== undefined) n++;
    }
    return n;
  }
  addEvents(evs, { prepend = false } = {}) {
    const fresh = evs.filter((e) => e.event_id && !this.ids.has(e.event_id));
    for (const e of fresh) this.ids.add(e.event_id);
    if (prepend) this.events = fresh.concat(this.events);
    else this.events.push(...fresh);
    return fresh;
  }
}

// openWhenReady opens a room now if sync has delivered it, or as soon as it does.
function openWhenReady(id) {
  if (S.rooms.has(id)) go("#/room/" + encodeURIComponent(id));
  else S.waitingFor.add(id);
}

function room(id) {
  let r = S.rooms.get(id);
  if (!r) {
    r = new Room(id);
    S.rooms.set(id, r);
  }
  return r;
}

function seenKey() {
  return "parley.seen." + S.me.user_id;
}
function loadSeen() {
  try {
    S.seen = JSON.parse(localStorage.getItem(seenKey()) || "{}");
  } catch {
    S.seen = {};
  }
}
function markSeen(r) {
  const ts = r.lastTs();
  if (ts && (S.seen[r.id] || 0) < ts) {
    S.seen[r.id] = ts;
    localStorage.setItem(seenKey(), JSON.stringify(S.seen));
  }
}

// ---------- auth screens ----------

async function showAuth(message) {
  $("app").hidden = true;
  const root = $("auth");
  root.hidden = false;
  root.replaceChildren(h("h1", {}, "parley"), h("p", { class: "muted" }, "Checking this node…"));
  let claim = false;
  let regSession;
  try {
    // The node says whether it has its owner yet; asking /register would
    // leave a 401 in the console.
    claim = !(await api.status()).claimed;
  } catch (e) {
    root.replaceChildren(h("h1", {}, "parley"), h("p", { class: "error", role: "alert" }, errText(e)),
      h("button", { type: "button", onclick: () => showAuth() }, "Try again"));
    return;
  }
  const err = h("p", { class: "error", role: "alert" }, message || "");
  const user = field("username", "User name", { autocomplete: "username", required: true, autocapitalize: "off", spellcheck: "false", pattern: claim ? "[a-z0-9._=\\/\\-]+" : null, title: claim ? "lower-case letters, digits and . _ = - /" : null });
  const pass = field("password", "Password", { type: "password", autocomplete: claim ? "new-password" : "current-password", required: true, minlength: claim ? 8 : null });
  const submit = h("button", { type: "submit" }, claim ? "Claim this node" : "Log in");
  const form = h("form", {}, user, pass, claim ? field("password2", "Repeat the password", { type: "password", autocomplete: "new-password", required: true }) : null, err, submit);
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
      const res = claim ? await api.register(name, fd.get("password"), regSession) : await api.login(name, fd.get("password"));
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
      ? "This parley node has no owner yet. Choose a user name and password: the first account owns the node."
      : "Log in with your account on this node."),
    form,
  );
  form.querySelector("input").focus();
}

function loggedIn(s) {
  S.me = s;
  session.save(s);
  setToken(s.access_token);
  startApp();
}

async function logout() {
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

function resetSession() {
  session.clear();
  setToken("");
  S.me = null;
  S.rooms.clear();
  S.invites.clear();
  S.since = null;
  S.current = null;
  S.filterId = null;
  S.waitingFor.clear();
  clearInterval(statusTimer);
  setBanner("");
}

setUnauthorizedHandler(() => {
  if (!S.me) return;
  S.syncAbort?.abort();
  S.syncing = false;
  resetSession();
  showAuth("You were logged out. Please log in again.");
});

// ---------- sync ----------

async function syncLoop() {
  if (S.syncing) return;
  S.syncing = true;
  let backoff = 1000;
  const key = "parley.filter." + S.me.user_id;
  while (S.syncing && S.me) {
    try {
      if (!S.filterId) {
        S.filterId = localStorage.getItem(key);
        if (!S.filterId) {
          const f = await api.putFilter(S.me.user_id, { room: { timeline: { limit: 50 } } });
          S.filterId = f.filter_id;
          localStorage.setItem(key, S.filterId);
        }
      }
      S.syncAbort = new AbortController();
      const res = await api.sync({ filter: S.filterId, since: S.since, timeout: S.since ? 30000 : 0 }, S.syncAbort.signal);
      const initial = !S.since;
      await processSync(res, initial);
      S.since = res.next_batch;
      backoff = 1000;
      setBanner("");
    } catch (e) {
      if (!S.syncing || !S.me) return;
      if (e?.name === "AbortError") continue;
      if (e instanceof APIError && e.status === 404 && S.filterId) {
        // the stored filter is gone (new data dir): make a new one
        localStorage.removeItem(key);
        S.filterId = null;
        continue;
      }
      if (e instanceof APIError && e.status === 401) return;
      setBanner("Lost contact with this node: " + errText(e) + " Retrying…");
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(backoff * 2, 15000);
    }
  }
}

async function processSync(res, initial) {
  const join = res.rooms?.join || {};
  const invite = res.rooms?.invite || {};
  const leave = res.rooms?.leave || {};
  const touched = new Set();
  for (const [id, jr] of Object.entries(join)) {
    const r = room(id);
    S.invites.delete(id);
    for (const ev of jr.state?.events || []) r.applyState(ev);
    const tl = jr.timeline || {};
    const evs = tl.events || [];
    if (tl.limited && r.events.length && !initial) {
      await fillGap(r, evs, tl.prev_batch);
    } else {
      if (!r.events.length && tl.prev_batch) r.prevBatch = tl.prev_batch;
      if (!r.events.length && !tl.limited && !tl.prev_batch) r.atStart = evs.some((e) => e.type === "m.room.create");
      r.addEvents(evs);
    }
    for (const ev of evs) {
      r.applyState(ev);
      const txn = ev.unsigned?.transaction_id;
      r.pending = r.pending.filter((p) => !(txn && p.txnId === txn) && p.eventId !== ev.event_id);
    }
    touched.add(id);
    if (S.waitingFor.has(id)) {
      S.waitingFor.delete(id);
      go("#/room/" + encodeURIComponent(id));
    }
  }
  for (const [id, ir] of Object.entries(invite)) {
    if (S.rooms.has(id)) continue;
    const state = new Map();
    for (const ev of ir.invite_state?.events || []) state.set(ev.type + "\u0000" + (ev.state_key ?? ""), ev);
    S.invites.set(id, { id, state });
    touched.add(id);
  }
  for (const id of Object.keys(leave)) {
    S.rooms.delete(id);
    S.invites.delete(id);
    if (S.current === id) go("#/");
    touched.add(id);
  }
  if (initial && !S.current && /^#\/room\//.test(location.hash)) route(); // a reload on a room's URL
  if (touched.size || initial) {
    renderRoomList();
    if (S.current && touched.has(S.current)) renderRoom({ fromSync: true });
  }
}

// fillGap handles a limited timeline: page back from prev_batch until
// the events we already hold are reached (a few pages at most); if they
// never are, the old events are dropped and scrollback starts afresh.
async function fillGap(r, evs, prevBatch) {
  let chunk = evs.slice();
  let from = prevBatch;
  let joined = chunk.some((e) => r.ids.has(e.event_id));
  for (let i = 0; i < 5 && !joined && from; i++) {
    try {
      const res = await api.messages(r.id, from, 50);
      const older = (res.chunk || []).slice().reverse();
      joined = older.some((e) => r.ids.has(e.event_id));
      chunk = older.concat(chunk);
      from = res.end && res.end !== from && older.length ? res.end : null;
    } catch {
      break;
    }
  }
  if (joined) {
    r.addEvents(chunk);
  } else {
    r.events = [];
    r.ids = new Set();
    r.prevBatch = from || prevBatch;
    r.atStart = !from;
    r.addEvents(chunk);
  }
}

async function loadOlder(r) {
  if (r.loadingOlder || r.atStart || !r.prevBatch) return;
  r.loadingOlder = true;
  renderTimelineStatus(r);
  try {
    const res = await api.messages(r.id, r.prevBatch, 40);
    const chunk = (res.chunk || []).slice().reverse();
    for (const ev of res.state || []) if (!r.state.has(ev.type + "\u0000" + ev.state_key)) r.applyState(ev);
    const fresh = r.addEvents(chunk, { prepend: true });
    if (!res.end || res.end === r.prevBatch || !chunk.length) r.atStart = true;
    r.prevBatch = res.end || null;
    r.loadingOlder = false;
    if (S.current === r.id) renderRoom({ prepended: fresh.length });
  } catch (e) {
    r.loadingOlder = false;
    r.olderError = errText(e);
    if (S.current === r.id) renderTimelineStatus(r);
  }
}

// ---------- node status ----------

async function refreshStatus() {
  try {
    S.status = await request("GET", "/_parley/v1/status", undefined, { auth: false });
  } catch {
    S.status = null;
  }
  setBanner();
}

let bannerOverride = "";
function setBanner(msg) {
  if (msg !== undefined) bannerOverride = msg;
  const b = $("banner");
  let text = bannerOverride;
  if (!text && S.status && S.me && !S.status.connected_peers) {
    text = "Not connected to any other device. Messages stay on this device until a peer connects (same network, or a --bootstrap address).";
  }
  b.textContent = text;
  b.hidden = !text;
}

// ---------- routing ----------

function go(hash) {
  if (location.hash !== hash) location.hash = hash;
  else route();
}

function route() {
  const hash = location.hash || "#/";
  if (!S.me) return;
  const joinMatch = hash.match(/^#\/join\/(.+)$/);
  if (joinMatch) {
    history.replaceState(null, "", "#/");
    openRoom(null);
    joinLinkDialog("parley:join/" + joinMatch[1]);
    return;
  }
  const roomMatch = hash.match(/^#\/room\/(.+)$/);
  openRoom(roomMatch ? decodeURIComponent(roomMatch[1]) : null);
}

function openRoom(id) {
  if (id && !S.rooms.has(id)) id = null;
  const changed = S.current !== id;
  S.current = id;
  $("app").classList.toggle("in-room", !!id);
  renderRoomList();
  renderRoom({ changed });
  if (id && changed) {
    const r = room(id);
    if (!r.membersFetched) {
      r.membersFetched = true;
      api.members(id).then((res) => {
        for (const ev of res.chunk || []) r.applyState(ev);
        if (S.current === id) renderMembers();
        renderRoomList();
      }).catch(() => { r.membersFetched = false; });
    }
    $("composer-input").focus({ preventScroll: true });
  }
}

// ---------- rendering: room list ----------

function renderRoomList() {
  const list = $("room-list");
  const items = [];
  if (S.invites.size) {
    items.push(h("li", { class: "list-heading" }, "Invites"));
    for (const inv of S.invites.values()) {
      const name = inv.state.get("m.room.name\u0000")?.content?.name;
      const myMember = S.me && inv.state.get("m.room.member\u0000" + S.me.user_id);
      const inviter = myMember?.sender;
      const accept = h("button", { type: "button", class: "small" }, "Accept");
      const decline = h("button", { type: "button", class: "danger small" }, "Decline");
      accept.addEventListener("click", async () => {
        accept.disabled = decline.disabled = true;
        accept.textContent = "Joining…";
        try {
          await api.join(inv.id);
          openWhenReady(inv.id);
        } catch (e) {
          toast(errText(e));
          accept.disabled = decline.disabled = false;
          accept.textContent = "Accept";
        }
      });
      decline.addEventListener("click", async () => {
        accept.disabled = decline.disabled = true;
        try {
          await api.leave(inv.id);
          S.invites.delete(inv.id);
          renderRoomList();
        } catch (e) {
          toast(errText(e));
          accept.disabled = decline.disabled = false;
        }
      });
      items.push(h("li", { class: "invite-item" },
        h("strong", {}, name || inv.id),
        inviter ? h("div", { class: "muted", style: "font-size:0.85rem" }, "from " + inviter) : null,
        h("div", { class: "inv-actions" }, accept, decline)));
    }
    items.push(h("li", { class: "list-heading" }, "Rooms"));
  }
  const rooms = [...S.rooms.values()].sort((a, b) => b.lastTs() - a.lastTs());
  for (const r of rooms) {
    const last = r.lastMessage();
    const unread = r.id === S.current ? 0 : r.unread();
    const lastText = last ? `${last.sender === S.me?.user_id ? "You" : r.displayName(last.sender)}: ${last.content?.body ?? "(deleted)"}` : "No messages yet";
    const btn = h("button", {
      type: "button", class: "room-item", "aria-current": r.id === S.current ? "true" : "false",
      "aria-label": `${r.name()}${unread ? `, ${unread} unread` : ""}`,
      onclick: () => go("#/room/" + encodeURIComponent(r.id)),
    },
      h("span", { class: "row1" }, h("span", { class: "rname" }, r.name()), unread ? h("span", { class: "badge" }, unread > 99 ? "99+" : unread) : null),
      h("span", { class: "last" }, lastText));
    items.push(h("li", {}, btn));
  }
  if (!rooms.length && !S.invites.size) items.push(h("li", { class: "muted", style: "padding:0.6rem" }, "No rooms yet."));
  list.replaceChildren(...items);
  const total = rooms.reduce((n, r) => n + (r.id === S.current ? 0 : r.unread()), 0);
  document.title = (total ? `(${total}) ` : "") + (S.current && S.rooms.get(S.current) ? S.rooms.get(S.current).name() + " · parley" : "parley");
}

// ---------- rendering: room ----------

function renderRoom({ changed = false, prepended = 0, fromSync = false } = {}) {
  const r = S.current && S.rooms.get(S.current);
  $("room-empty").hidden = !!r;
  $("room-head").hidden = $("timeline").hidden = $("composer").hidden = !r;
  $("members").hidden = !r || !S.membersOpen;
  $("members-btn").setAttribute("aria-expanded", String(!!r && S.membersOpen));
  if (!r) return;
  $("room-name").textContent = r.name();
  const topic = r.st("m.room.topic")?.topic || "";
  $("room-topic").textContent = topic;
  $("room-topic").hidden = !topic;
  $("invite-btn").hidden = !r.can("invite");
  $("link-btn").hidden = !r.can("invite");
  renderTimeline(r, { changed, prepended, fromSync });
  renderMembers();
  if (document.visibilityState === "visible") markSeen(r);
}

function eventLine(r, ev) {
  const who = (u) => r.displayName(u);
  const c = ev.content || {};
  switch (ev.type) {
    case "m.room.create":
      return `${who(ev.sender)} created the room`;
    case "m.room.member": {
      const prev = ev.unsigned?.prev_content?.membership;
      const target = who(ev.state_key);
      switch (c.membership) {
        case "join":
          if (prev === "join") return c.displayname !== ev.unsigned?.prev_content?.displayname ? `${ev.unsigned?.prev_content?.displayname || ev.state_key} is now ${c.displayname || ev.state_key}` : null;
          return `${target} joined`;
        case "invite":
          return `${who(ev.sender)} invited ${c.displayname || ev.state_key}`;
        case "leave":
          if (ev.sender !== ev.state_key) return prev === "ban" ? `${who(ev.sender)} unbanned ${target}` : `${who(ev.sender)} removed ${target}${c.reason ? ": " + c.reason : ""}`;
          return prev === "invite" ? `${target} declined the invite` : `${target} left`;
        case "ban":
          return `${who(ev.sender)} banned ${target}${c.reason ? ": " + c.reason : ""}`;
        default:
          return null;
      }
    }
    case "m.room.name":
      return c.name ? `${who(ev.sender)} named the room “${c.name}”` : `${who(ev.sender)} removed the room name`;
    case "m.room.topic":
      return c.topic ? `${who(ev.sender)} set the topic: ${c.topic}` : `${who(ev.sender)} removed the topic`;
    case "m.room.power_levels":
      return `${who(ev.sender)} changed power levels`;
    case "m.room.join_rules":
      return `${who(ev.sender)} made the room ${c.join_rule === "public" ? "public" : "invite-only"}`;
    case "m.room.history_visibility":
    case "m.room.guest_access":
    case "org.parley.link":
      return null;
    default:
      return null;
  }
}

function messageEl(r, ev, { first, pending } = {}) {
  const own = ev.sender === S.me.user_id;
  const c = ev.content || {};
  const redacted = c.body === undefined && !pending;
  const cls = ["msg", first && "first", own && "own", pending && "pending", pending?.status === "failed" && "failed", c.msgtype === "m.emote" && "emote", redacted && "redacted"].filter(Boolean).join(" ");
  const ts = ev.origin_server_ts || Date.now();
  const body = redacted ? "Message deleted" : c.msgtype === "m.emote" ? `* ${r.displayName(ev.sender)} ${c.body}` : c.body;
  const meta = first ? h("div", { class: "meta" }, h("span", { class: "sender", title: ev.sender }, r.displayName(ev.sender)),
    h("time", { class: "time", datetime: new Date(ts).toISOString(), title: fullFmt.format(ts) }, timeFmt.format(ts))) : null;
  const el = h("div", { class: cls, dataset: { id: ev.event_id || "" }, title: first ? null : timeFmt.format(ts) }, meta, h("div", { class: "body" }, body));
  if (pending) {
    const state = h("div", { class: "state", role: pending.status === "failed" ? "alert" : null });
    if (pending.status === "failed") {
      state.append(`Not sent: ${pending.error}`, h("button", { type: "button", class: "secondary small", onclick: () => sendPending(r, pending) }, "Retry"),
        h("button", { type: "button", class: "ghost small", onclick: () => { r.pending = r.pending.filter((p) => p !== pending); renderRoom(); } }, "Discard"));
    } else {
      state.append(pending.status === "sent" ? "Sent, waiting for the room…" : h("span", { class: "spinner", "aria-hidden": "true" }), pending.status === "sent" ? "" : " Sending…");
    }
    el.append(state);
  }
  return el;
}

function renderTimelineStatus(r) {
  const tl = $("timeline");
  let st = tl.querySelector(".tl-status");
  if (!st) {
    st = h("div", { class: "tl-status" });
    tl.prepend(st);
  }
  st.replaceChildren();
  if (r.loadingOlder) st.append(h("span", { class: "spinner", "aria-hidden": "true" }), " Loading older messages…");
  else if (r.olderError) st.append(`Could not load older messages: ${r.olderError} `, h("button", { type: "button", class: "secondary small", onclick: () => { r.olderError = null; loadOlder(r); } }, "Retry"));
  else if (r.atStart || !r.prevBatch) st.append("This is the start of the room.");
  else st.append(h("button", { type: "button", class: "secondary small", onclick: () => loadOlder(r) }, "Load older messages"));
}

function renderTimeline(r, { changed, prepended }) {
  const tl = $("timeline");
  const atBottom = tl.scrollHeight - tl.scrollTop - tl.clientHeight < 60;
  const oldHeight = tl.scrollHeight, oldTop = tl.scrollTop;
  const nodes = [];
  let lastDay = "", lastSender = "", lastTs = 0;
  const push = (ev, opts = {}) => {
    const ts = ev.origin_server_ts || Date.now();
    const day = new Date(ts).toDateString();
    if (day !== lastDay) {
      nodes.push(h("div", { class: "day", role: "separator" }, dayLabel(ts)));
      lastDay = day;
      lastSender = "";
    }
    if (ev.type === "m.room.message") {
      const first = ev.sender !== lastSender || ts - lastTs > 5 * 60 * 1000;
      nodes.push(messageEl(r, ev, { first, ...opts }));
      lastSender = ev.sender;
      lastTs = ts;
    } else {
      const line = eventLine(r, ev);
      if (line) {
        nodes.push(h("div", { class: "sys" }, line));
        lastSender = "";
      }
    }
  };
  for (const ev of r.events) push(ev);
  for (const p of r.pending) push({ type: "m.room.message", sender: S.me.user_id, content: p.content, origin_server_ts: p.ts }, { pending: p });
  tl.replaceChildren(...nodes);
  renderTimelineStatus(r);
  if (changed || atBottom) tl.scrollTop = tl.scrollHeight;
  else if (prepended) tl.scrollTop = oldTop + (tl.scrollHeight - oldHeight);
  // Not enough history to fill the screen: fetch more.
  if (tl.scrollHeight <= tl.clientHeight + 10 && !r.atStart && r.prevBatch && !r.loadingOlder && !r.olderError) loadOlder(r);
}

// ---------- members ----------

function levelName(pl) {
  if (pl === Infinity) return "Owner";
  if (pl >= 100) return "Admin";
  if (pl >= 50) return "Moderator";
  return pl ? `Level ${pl}` : "";
}

function renderMembers() {
  const r = S.current && S.rooms.get(S.current);
  const panel = $("members");
  if (!r) return panel.replaceChildren();
  const cmp = (x, y) => (x < y ? -1 : x > y ? 1 : 0);
  const ms = r.members(["join", "invite"]).sort((a, b) => cmp(r.levelOf(b.state_key), r.levelOf(a.state_key)) || (a.content.displayname || a.state_key).localeCompare(b.content.displayname || b.state_key));
  const joined = ms.filter((m) => m.content.membership === "join");
  const invited = ms.filter((m) => m.content.membership === "invite");
  const item = (m) => {
    const pl = r.levelOf(m.state_key);
    return h("li", {}, h("button", { type: "button", class: "member", onclick: () => memberDialog(r, m.state_key) },
      h("span", { style: "min-width:0" }, h("span", { class: "mname" }, (m.content.displayname || m.state_key) + (m.state_key === S.me.user_id ? " (you)" : "")), h("span", { class: "mid" }, m.state_key)),
      levelName(pl) ? h("span", { class: "pl" + (pl >= 100 ? " admin" : "") }, levelName(pl)) : null));
  };
  panel.replaceChildren(...[
    h("h2", {}, `Members (${joined.length})`, h("button", { type: "button", class: "ghost small", "aria-label": "Close members", onclick: toggleMembers }, "✕")),
    h("ul", { class: "link-list", style: "margin:0" }, joined.map(item)),
    invited.length ? h("h2", {}, `Invited (${invited.length})`) : null,
    invited.length ? h("ul", { class: "link-list", style: "margin:0" }, invited.map(item)) : null,
  ].filter(Boolean));
}

function toggleMembers() {
  S.membersOpen = !S.membersOpen;
  renderRoom();
  if (S.membersOpen) $("members").querySelector("button")?.focus();
  else $("members-btn").focus();
}

function memberDialog(r, userId) {
  const me = S.me.user_id;
  const myPL = r.levelOf(me), theirPL = r.levelOf(userId);
  const m = r.st("m.room.member", userId) || {};
  const canPL = r.can("m.room.power_levels") && (userId === me || theirPL < myPL);
  const outranks = userId !== me && theirPL < myPL;
  openDialog(m.displayname || userId, (body, close) => {
    const err = h("p", { class: "error", role: "alert" });
    const act = (label, cls, f) => h("button", { type: "button", class: cls, onclick: async (ev) => {
      ev.target.disabled = true;
      err.textContent = "";
      try {
        await f();
        close();
      } catch (e) {
        err.textContent = errText(e);
        ev.target.disabled = false;
      }
    } }, label);
    const setPL = (level) => async () => {
      const pl = structuredClone(r.st("m.room.power_levels") || {});
      pl.users = pl.users || {};
      if (level === (pl.users_default ?? 0)) delete pl.users[userId];
      else pl.users[userId] = level;
      await api.putState(r.id, "m.room.power_levels", "", pl);
    };
    const actions = [];
    if (canPL) {
      for (const [lvl, name] of [[100, "Make admin"], [50, "Make moderator"], [0, "Make regular member"]]) {
        if (lvl !== theirPL && lvl <= myPL) actions.push(act(name, "secondary", setPL(lvl)));
      }
    }
    if (outranks && m.membership === "join" || m.membership === "invite") {
      if (outranks && r.can("kick")) actions.push(act(m.membership === "invite" ? "Cancel invite" : "Remove from room", "danger", () => api.kick(r.id, userId)));
    }
    if (outranks && r.can("ban")) actions.push(act("Ban", "danger", () => api.ban(r.id, userId)));
    body.append(
      h("dl", { class: "kv" }, h("dt", {}, "User ID"), h("dd", {}, h("code", {}, userId)), h("dt", {}, "Power level"), h("dd", {}, theirPL === Infinity ? "Owner (room creator)" : `${theirPL}${levelName(theirPL) ? " (" + levelName(theirPL) + ")" : ""}`), h("dt", {}, "Membership"), h("dd", {}, m.membership || "—")),
      actions.length ? h("div", { class: "dlg-actions", style: "justify-content:flex-start" }, actions) : h("p", { class: "muted" }, userId === me ? "This is you." : "You cannot change this member's role or remove them here."),
      err,
      h("div", { class: "dlg-actions" }, h("button", { type: "button", class: "secondary", onclick: close, autofocus: true }, "Close")),
    );
  });
}

// ---------- sending ----------

let txnCounter = 0;
function sendMessage(r, text) {
  const p = { txnId: `web${Date.now()}.${txnCounter++}`, content: { msgtype: "m.text", body: text }, status: "sending", ts: Date.now() };
  r.pending.push(p);
  renderRoom();
  $("timeline").scrollTop = $("timeline").scrollHeight;
  sendPending(r, p);
}

async function sendPending(r, p) {
  p.status = "sending";
  p.error = null;
  if (S.current === r.id) renderRoom();
  try {
    const res = await api.send(r.id, p.txnId, p.content);
    p.eventId = res.event_id;
    if (r.ids.has(p.eventId)) r.pending = r.pending.filter((x) => x !== p);
    else p.status = "sent";
  } catch (e) {
    p.status = "failed";
    p.error = errText(e);
  }
  if (S.current === r.id) renderRoom();
}

// ---------- dialogs: rooms ----------

function createRoomDialog() {
  const vis = h("div", { class: "radio-row", role: "radiogroup", "aria-label": "Who can join" },
    h("label", {}, h("input", { type: "radio", name: "preset", value: "private_chat", checked: true }), "Private: invite only"),
    h("label", {}, h("input", { type: "radio", name: "preset", value: "public_chat" }), "Public: anyone with the ID"));
  formDialog("New room", [field("name", "Name", { required: true, maxlength: 255, autofocus: true }), field("topic", "Topic (optional)", { maxlength: 1000 }), h("label", {}, "Who can join"), vis], "Create", async (fd, close) => {
    const body = { preset: fd.get("preset"), name: String(fd.get("name")).trim() };
    const topic = String(fd.get("topic") || "").trim();
    if (topic) body.topic = topic;
    if (body.preset === "public_chat") body.visibility = "private"; // not listed in a directory
    const res = await api.createRoom(body);
    close();
    openWhenReady(res.room_id);
  });
}

function inviteDialog(r) {
  formDialog(`Invite to ${r.name()}`, [field("user", "User ID", { required: true, placeholder: "@name:server", pattern: "@[^:]+:.+", title: "a full user ID like @alice:5f0c…", autocapitalize: "off", spellcheck: "false", note: "Their full Matrix user ID, as shown in their parley node panel." })], "Invite", async (fd, close) => {
    await api.invite(r.id, String(fd.get("user")).trim());
    close();
    toast("Invited");
  });
}

function settingsDialog(r) {
  const canName = r.can("m.room.name"), canTopic = r.can("m.room.topic");
  if (!canName && !canTopic) {
    openDialog("Room settings", (body, close) => body.append(
      h("dl", { class: "kv" }, h("dt", {}, "Name"), h("dd", {}, r.name()), h("dt", {}, "Topic"), h("dd", {}, r.st("m.room.topic")?.topic || "—"), h("dt", {}, "Room ID"), h("dd", {}, h("code", {}, r.id))),
      h("p", { class: "muted" }, "Your power level does not allow changing the name or topic."),
      h("div", { class: "dlg-actions" }, h("button", { type: "button", onclick: close }, "Close"))));
    return;
  }
  const oldName = r.st("m.room.name")?.name || "", oldTopic = r.st("m.room.topic")?.topic || "";
  formDialog("Room settings", [
    field("name", "Name", { value: oldName, disabled: !canName, maxlength: 255 }),
    field("topic", "Topic", { value: oldTopic, disabled: !canTopic, multiline: true, maxlength: 1000 }),
    h("p", { class: "field-note" }, "Room ID: ", h("code", {}, r.id)),
  ], "Save", async (fd, close) => {
    const name = String(fd.get("name") ?? oldName).trim(), topic = String(fd.get("topic") ?? oldTopic).trim();
    if (canName && name !== oldName) await api.putState(r.id, "m.room.name", "", { name });
    if (canTopic && topic !== oldTopic) await api.putState(r.id, "m.room.topic", "", { topic });
    close();
  });
}

function leaveDialog(r) {
  openDialog(`Leave ${r.name()}?`, (body, close) => {
    const err = h("p", { class: "error", role: "alert" });
    const btn = h("button", { type: "button", class: "danger", onclick: async () => {
      btn.disabled = true;
      try {
        await api.leave(r.id);
        S.rooms.delete(r.id);
        close();
        go("#/");
        renderRoomList();
      } catch (e) {
        err.textContent = errText(e);
        btn.disabled = false;
      }
    } }, "Leave");
    body.append(h("p", {}, "You will need a new invite to come back to a private room."), err,
      h("div", { class: "dlg-actions" }, h("button", { type: "button", class: "secondary", onclick: close, autofocus: true }, "Cancel"), btn));
  });
}

// ---------- invite links ----------

function linkDialog(r) {
  openDialog("Invite with a link", (body) => {
    const out = h("div", { "aria-live": "polite" });
    const list = h("div");
    const uses = field("max_uses", "Maximum uses (optional)", { type: "number", min: 1, max: 1000000, placeholder: "unlimited" });
    const expiry = h("select", { id: "link-exp", name: "expires" },
      h("option", { value: "" }, "Never"), h("option", { value: String(3600e3) }, "1 hour"), h("option", { value: String(86400e3), selected: true }, "1 day"),
      h("option", { value: String(7 * 86400e3) }, "7 days"), h("option", { value: String(30 * 86400e3) }, "30 days"));
    const err = h("p", { class: "error", role: "alert" });
    const submit = h("button", { type: "submit" }, "Create link");
    const form = h("form", {}, h("p", { class: "muted" }, "Anyone with the link can join this room. Any member's device can honour it, so it keeps working while yours is off."),
      uses, h("label", { for: "link-exp" }, "Expires after"), expiry, err, h("div", { class: "dlg-actions" }, submit));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      err.textContent = "";
      submit.disabled = true;
      const fd = new FormData(form);
      const req = {};
      if (fd.get("max_uses")) req.max_uses = Number(fd.get("max_uses"));
      if (fd.get("expires")) req.expires_in_ms = Number(fd.get("expires"));
      try {
        const link = await api.createLink(r.id, req);
        showLink(out, link);
        out.scrollIntoView({ block: "start", behavior: "smooth" });
        out.querySelector("button")?.focus({ preventScroll: true });
        refreshLinks(r, list);
      } catch (e) {
        err.textContent = errText(e);
      } finally {
        submit.disabled = false;
      }
    });
    body.append(form, out, list);
    refreshLinks(r, list);
  });
}

function linkInfo(l) {
  const parts = [];
  parts.push(l.max_uses ? `used ${l.uses} of ${l.max_uses}` : `used ${l.uses} time${l.uses === 1 ? "" : "s"}`);
  parts.push(l.expires_ts ? (l.expires_ts > Date.now() ? `expires in ${relTime(l.expires_ts - Date.now())} (${fullFmt.format(l.expires_ts)})` : "expired") : "never expires");
  return parts.join(" · ");
}

function showLink(out, l) {
  const qrText = l.web_link || l.link;
  let qr;
  try {
    qr = qrSVG(qrText, { ecl: qrText.length > 500 ? "L" : "M", label: "QR code of the invite link" });
    qr.classList.add("big");
  } catch (e) {
    qr = h("p", { class: "error" }, "Link too long for a QR code.");
  }
  out.replaceChildren(...kids(
    h("h3", {}, "Your new link"),
    h("label", {}, "Link for the parley app"), copyRow(l.link, "invite link"),
    l.web_link ? [h("label", {}, "Web link (opens in a parley node's web app)"), copyRow(l.web_link, "web link")] : null,
    qr,
    h("p", { class: "muted", style: "text-align:center" }, linkInfo(l)),
  ));
}

async function refreshLinks(r, list) {
  try {
    const res = await api.links(r.id);
    const links = (res.links || []).filter(Boolean);
    list.replaceChildren(
      h("h3", {}, `Live links (${links.length})`),
      links.length ? h("ul", { class: "link-list" }, links.map((l) => h("li", {},
        h("span", {}, h("code", {}, l.id), h("br"), h("span", { class: "muted" }, linkInfo(l) + (l.created_by ? ` · made by ${l.created_by}` : ""))),
        h("button", { type: "button", class: "danger small", "aria-label": `Revoke link ${l.id}`, onclick: async (ev) => {
          ev.target.disabled = true;
          try {
            await api.revokeLink(r.id, l.id);
            toast("Link revoked");
          } catch (e) {
            toast(errText(e));
          }
          refreshLinks(r, list);
        } }, "Revoke")))) : h("p", { class: "muted" }, "No live links."));
  } catch (e) {
    list.replaceChildren(h("p", { class: "error" }, "Could not list links: " + errText(e)));
  }
}

function joinLinkDialog(prefill = "") {
  openDialog("Join with a link", (body, close) => {
    const ta = h("textarea", { id: "join-link", name: "link", rows: 3, required: true, placeholder: "parley:join/… or http://127.0.0.1:8008/#/join/…", spellcheck: "false", autocapitalize: "off" });
    ta.value = prefill;
    const err = h("p", { class: "error", role: "alert" });
    const progress = h("div", { class: "progress", "aria-live": "polite", hidden: true });
    const submit = h("button", { type: "submit", autofocus: prefill ? true : null }, "Join");
    const form = h("form", {}, prefill ? h("p", {}, "You opened an invite link. Join the room?") : h("p", { class: "muted" }, "Paste an invite link someone shared with you."),
      h("label", { for: "join-link" }, "Invite link"), ta, err, progress,
      h("div", { class: "dlg-actions" }, h("button", { type: "button", class: "secondary", onclick: close }, "Cancel"), submit));
    ta.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && !ev.shiftKey) {
        ev.preventDefault();
        form.requestSubmit();
      }
    });
    let timer;
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      err.textContent = "";
      const link = ta.value.trim();
      submit.disabled = ta.disabled = true;
      const t0 = Date.now();
      const tick = () => {
        const s = Math.round((Date.now() - t0) / 1000);
        progress.replaceChildren(h("span", { class: "spinner", "aria-hidden": "true" }),
          s < 4 ? "Asking the room's members to let you in…" : `Finding a device of a room member and joining… ${s} s`);
      };
      progress.hidden = false;
      tick();
      timer = setInterval(tick, 1000);
      try {
        const res = await api.joinLink(link);
        clearInterval(timer);
        close();
        toast("Joined");
        openWhenReady(res.room_id);
      } catch (e) {
        clearInterval(timer);
        progress.hidden = true;
        err.textContent = errText(e);
        submit.disabled = ta.disabled = false;
        submit.textContent = "Try again";
      }
    });
    body.append(form);
    (prefill ? submit : ta).focus();
  });
}

// ---------- node panel ----------

async function nodeDialog() {
  await refreshStatus();
  openDialog("This node", (body, close) => {
    const s = S.status;
    if (!s) {
      body.append(h("p", { class: "error" }, "Could not read the node's status."));
      return;
    }
    const reach = s.reachability;
    const reachText = reach === undefined ? null : typeof reach === "string" ? reach : JSON.stringify(reach);
    body.append(...kids(
      s.connected_peers ? null : h("p", { class: "banner", style: "border-radius:8px" }, "Not connected to any other device: others cannot reach you and your messages wait on this device."),
      h("label", {}, "Your user ID"), copyRow(S.me.user_id, "user ID"),
      qrSVG(S.me.user_id, { label: "QR code of your user ID" }),
      h("label", {}, "Server name"), copyRow(s.server_name, "server name"),
      h("dl", { class: "kv" },
        h("dt", {}, "Connected peers"), h("dd", {}, String(s.connected_peers ?? 0)),
        reachText ? [h("dt", {}, "Reachability"), h("dd", {}, reachText)] : null,
        h("dt", {}, "Rooms"), h("dd", {}, String(s.rooms ?? 0)),
        h("dt", {}, "Peer ID"), h("dd", {}, h("code", {}, s.peer_id || "")),
        h("dt", {}, "Listening on"), h("dd", {}, (s.addrs || []).length ? h("ul", { style: "margin:0;padding-left:1rem" }, s.addrs.map((a) => h("li", {}, h("code", {}, a)))) : "—"),
        h("dt", {}, "Data folder"), h("dd", {}, h("code", {}, s.data_dir || "")),
        h("dt", {}, "Version"), h("dd", {}, s.version || ""),
      ),
      h("div", { class: "dlg-actions" }, h("button", { type: "button", onclick: close, autofocus: true }, "Close")),
    ));
  });
}

// ---------- wiring ----------

function wire() {
  $("logout-btn").addEventListener("click", logout);
  $("me-btn").addEventListener("click", nodeDialog);
  $("node-btn").addEventListener("click", nodeDialog);
  $("new-room-btn").addEventListener("click", createRoomDialog);
  $("join-link-btn").addEventListener("click", () => joinLinkDialog());
  $("back-btn").addEventListener("click", () => go("#/"));
  const cur = () => S.rooms.get(S.current);
  $("invite-btn").addEventListener("click", () => cur() && inviteDialog(cur()));
  $("link-btn").addEventListener("click", () => cur() && linkDialog(cur()));
  $("settings-btn").addEventListener("click", () => cur() && settingsDialog(cur()));
  $("leave-btn").addEventListener("click", () => cur() && leaveDialog(cur()));
  $("members-btn").addEventListener("click", toggleMembers);
  const input = $("composer-input");
  const grow = () => {
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight + 2, 160) + "px";
  };
  input.addEventListener("input", grow);
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      $("composer").requestSubmit();
    }
  });
  $("composer").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const r = cur();
    const text = input.value;
    if (!r || !text.trim()) return;
    input.value = "";
    grow();
    sendMessage(r, text);
  });
  $("timeline").addEventListener("scroll", () => {
    const r = cur();
    if (r && $("timeline").scrollTop < 150) loadOlder(r);
  });
  window.addEventListener("hashchange", route);
  document.addEventListener("visibilitychange", () => {
    const r = cur();
    if (r && document.visibilityState === "visible") {
      markSeen(r);
      renderRoomList();
    }
  });
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && !document.querySelector("dialog[open]") && S.membersOpen && window.matchMedia("(max-width: 760px)").matches && S.current) toggleMembers();
  });
}

let statusTimer;
function startApp() {
  $("auth").hidden = true;
  $("app").hidden = false;
  $("me-btn").textContent = S.me.user_id;
  loadSeen();
  refreshStatus();
  clearInterval(statusTimer);
  statusTimer = setInterval(refreshStatus, 15000);
  renderRoomList();
  route();
  syncLoop();
}

async function main() {
  const saved = session.load();
  if (saved?.access_token) {
    S.me = saved;
    setToken(saved.access_token);
    try {
      const who = await api.whoami();
      S.me.user_id = who.user_id;
      startApp();
      return;
    } catch (e) {
      if (!(e instanceof APIError)) {
        // the node is unreachable: keep the session and retry
        setBanner("Cannot reach this node. Retrying…");
        setTimeout(main, 3000);
        return;
      }
      resetSession();
    }
  }
  // A join link opened while logged out stays in the URL: route() picks it
  // up once logged in.
  await showAuth();
}

wire();
main();
