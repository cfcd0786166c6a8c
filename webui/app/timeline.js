// The open room: its header, timeline, scrollback, receipts and typing.
//
// Rendering is incremental: each sync computes the list of what the
// timeline should show (day lines, the unread line, events, messages being
// sent), each with a key (its event ID) and a signature of everything its
// element shows; elements whose key and signature are unchanged stay in
// the page, and only new or changed ones are built (message.js). An edit,
// a reaction, a redaction or a receipt changes one signature, so one
// element is built again; a new message is one element appended.
import { api } from "./api.js";
import { $, h, errText, dayLabel, openDialog, toast } from "./dom.js";
import { S, markSeen, room, emit, on } from "./state.js";
import { renderMembers, showMembersPanel } from "./members.js";
import { renderRoomList } from "./roomlist.js";
import { messageEl, eventLine, isMessage, seenEl } from "./message.js";
import { openThread } from "./thread.js";

// view is what the timeline element holds now.
const view = {
  roomId: null,
  nodes: new Map(), // key -> element
  unreadAt: null, // event ID above which the unread line sits
  stateVer: -1, // the room's state version the members panel shows
};

// What a click in the timeline does.
const act = {
  jump: (id) => jumpTo(id),
  react: (ev, key) => toggleReaction(S.rooms.get(S.current), ev, key),
  reply: (ev) => emit("reply", S.rooms.get(S.current), ev),
  edit: (ev) => emit("edit", S.rooms.get(S.current), ev),
  del: (ev) => deleteDialog(S.rooms.get(S.current), ev),
  retry: (p) => emit("retry", S.rooms.get(S.current), p),
  discard: (p) => emit("discard", S.rooms.get(S.current), p),
  cancel: (p) => emit("cancel-upload", S.rooms.get(S.current), p),
  thread: (rootId) => openThread(S.rooms.get(S.current), rootId),
};

// A quoted original fetched from the node: the quoting messages change.
on("quoted-loaded", (r) => {
  if (S.current === r.id) scheduleRender();
});

// ---------- opening a room ----------

export function openRoom(id) {
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
        if (S.current === id) renderRoom();
        renderRoomList();
      }).catch(() => { r.membersFetched = false; });
    }
    $("composer-input").focus({ preventScroll: true });
  }
}

// ---------- rendering: room ----------

let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  queueMicrotask(() => {
    renderQueued = false;
    renderRoom();
  });
}

// wireOnce sets the timeline's own listeners: a tap on a message shows its
// actions (phones have no hover), a click elsewhere closes the emoji
// picker, and coming back to the tab sends the read receipt.
let wired = false;
function wireOnce() {
  if (wired) return;
  wired = true;
  $("timeline").addEventListener("click", (ev) => {
    if (ev.target.closest("button, a, input, video, audio, .picker")) return;
    const m = ev.target.closest(".msg");
    for (const x of $("timeline").querySelectorAll(".msg.show-actions")) if (x !== m) x.classList.remove("show-actions");
    m?.classList.toggle("show-actions");
  });
  // Stuck to the bottom, the timeline stays there as pictures load and
  // messages below the fold take their real height.
  const tl = $("timeline");
  // Only a scroll up unsticks it: content growing below moves nothing.
  tl.addEventListener("scroll", () => {
    if (tl.scrollHeight - tl.scrollTop - tl.clientHeight < 60) view.stuck = true;
    else if (tl.scrollTop < (view.lastTop ?? 0)) view.stuck = false;
    view.lastTop = tl.scrollTop;
  });
  tl.addEventListener("load", () => { if (view.stuck) tl.scrollTop = tl.scrollHeight; }, true);
  document.addEventListener("click", (ev) => {
    if (!ev.target.closest?.(".picker, .act-react")) for (const p of document.querySelectorAll(".picker")) p.remove();
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && S.current) renderRoom();
  });
}

export function renderRoom({ changed = false, prepended = 0, fromSync = false } = {}) {
  wireOnce();
  const r = S.current && S.rooms.get(S.current);
  // Writes only what changed: setting even the same text makes the
  // browser lay out the whole room (a thousand messages) again.
  setHidden($("room-empty"), !!r);
  for (const id of ["room-head", "timeline", "composer"]) setHidden($(id), !r);
  showMembersPanel();
  if (!r) {
    clearView(null);
    renderTyping(null);
    return renderMembers();
  }
  setText($("room-name"), r.name());
  const topic = r.st("m.room.topic")?.topic || "";
  setText($("room-topic"), topic);
  setHidden($("room-topic"), !topic);
  setHidden($("invite-btn"), !r.can("invite"));
  setHidden($("link-btn"), !r.can("invite"));
  if (changed || view.roomId !== r.id) {
    clearView(r.id);
    view.unreadAt = firstUnread(r);
  }
  renderTimeline(r, { changed, prepended });
  if (view.stateVer !== r.stateVer || changed) {
    view.stateVer = r.stateVer;
    renderMembers();
  }
  renderTyping(r);
  emit("timeline-rendered", r);
  if (document.visibilityState === "visible") {
    markSeen(r);
    sendReceipt(r);
  }
}

function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}
function setHidden(el, hidden) {
  if (el.hidden !== hidden) el.hidden = hidden;
}

function clearView(id) {
  const tl = $("timeline");
  for (const el of view.nodes.values()) el.remove();
  view.nodes.clear();
  view.roomId = id;
  view.unreadAt = null;
  view.stateVer = -1;
  tl.querySelector(".tl-status")?.remove();
}

// firstUnread is the first message from someone else after the user's own
// read receipt (or, without one, after what this app last showed them).
function firstUnread(r) {
  const mine = r.receipts.get(S.me.user_id);
  let i = mine ? r.events.findIndex((e) => e.event_id === mine.eventId) : -1;
  const seenTs = S.seen[r.id] || 0;
  for (let j = i >= 0 ? i + 1 : 0; j < r.events.length; j++) {
    const e = r.events[j];
    if (!isMessage(e) || e.sender === S.me.user_id) continue;
    if (i >= 0 || e.origin_server_ts > seenTs) return e.event_id;
  }
  return null;
}

function renderTimelineStatus(r) {
  const tl = $("timeline");
  let st = tl.querySelector(".tl-status");
  if (!st) {
    st = h("div", { class: "tl-status" });
    tl.prepend(st);
  }
  const key = r.loadingOlder ? "loading" : r.olderError ? "error:" + r.olderError : r.atStart || !r.prevBatch ? "start" : "more";
  if (st.dataset.key === key) return;
  st.dataset.key = key;
  st.replaceChildren();
  if (r.loadingOlder) st.append(h("span", { class: "spinner", "aria-hidden": "true" }), " Loading older messages…");
  else if (r.olderError) st.append(`Could not load older messages: ${r.olderError} `, h("button", { type: "button", class: "secondary small", onclick: () => { r.olderError = null; loadOlder(r); } }, "Retry"));
  else if (r.atStart || !r.prevBatch) st.append("This is the start of the room.");
  else st.append(h("button", { type: "button", class: "secondary small", onclick: () => loadOlder(r) }, "Load older messages"));
}

// seenBy maps each shown event to the members (not the user) whose read
// receipt is on it, or on an event after it that is not shown.
function seenBy(r, shown) {
  const out = new Map();
  if (!r.receipts.size) return out;
  const pos = new Map();
  r.events.forEach((e, i) => pos.set(e.event_id, i));
  for (const [user, rc] of r.receipts) {
    if (user === S.me.user_id) continue;
    let i = pos.get(rc.eventId);
    if (i === undefined) continue;
    while (i >= 0 && !shown.has(r.events[i].event_id)) i--;
    if (i < 0) continue;
    const id = r.events[i].event_id;
    out.set(id, [...(out.get(id) || []), user]);
  }
  for (const list of out.values()) list.sort();
  return out;
}

// wanted lists what the timeline should show: {key, sig, build}.
function wanted(r) {
  const out = [];
  const shown = new Set();
  const lines = new Map();
  const member = new Map(); // user ID -> their last member event's content, in timeline order
  for (let ev of r.events) {
    if (isMessage(ev)) shown.add(ev.event_id);
    else {
      if (ev.type === "m.room.member" && typeof ev.state_key === "string") {
        // Without prev_content, the member's previous event in the
        // timeline says whether this is a join or a new name.
        const prev = member.get(ev.state_key);
        member.set(ev.state_key, ev.content || {});
        if (prev && !ev.unsigned?.prev_content) ev = { ...ev, unsigned: { ...ev.unsigned, prev_content: prev } };
      }
      const line = eventLine(r, ev);
      if (line) {
        shown.add(ev.event_id);
        lines.set(ev.event_id, line);
      }
    }
  }
  const seen = seenBy(r, shown);
  let lastDay = "", lastSender = "", lastTs = 0;
  const day = (ts) => {
    const d = new Date(ts).toDateString();
    if (d === lastDay) return;
    lastDay = d;
    lastSender = "";
    const label = dayLabel(ts);
    out.push({ key: "day:" + d, sig: label, build: () => h("div", { class: "day", role: "separator" }, label) });
  };
  const message = (ev, opts, key, extra) => {
    const ts = ev.origin_server_ts || Date.now();
    day(ts);
    const first = ev.sender !== lastSender || ts - lastTs > 5 * 60 * 1000;
    lastSender = ev.sender;
    lastTs = ts;
    const sig = [first ? 1 : 0, r.ver.get(ev.event_id) || 0, first ? r.displayName(ev.sender) + r.avatarURL(ev.sender) : "", extra].join("|");
    out.push({ key, sig, build: () => messageEl(r, ev, { first, ...opts }, act) });
  };
  // "Seen by" is its own element under the event: a receipt moving
  // builds only it.
  const seenRow = (id) => {
    const users = seen.get(id);
    if (!users) return;
    const names = users.map((u) => r.displayName(u) + r.avatarURL(u)).join(",");
    out.push({ key: "seen:" + id, sig: names, build: () => seenEl(r, users) });
  };
  for (const ev of r.events) {
    if (!shown.has(ev.event_id)) continue;
    if (ev.event_id === view.unreadAt) {
      day(ev.origin_server_ts);
      out.push({ key: "unread", sig: "", build: () => h("div", { class: "unread-line", role: "separator" }, h("span", {}, "New messages")) });
      lastSender = "";
    }
    const line = lines.get(ev.event_id);
    if (line) {
      day(ev.origin_server_ts);
      out.push({ key: ev.event_id, sig: line, build: () => h("div", { class: "sys", dataset: { id: ev.event_id } }, line) });
      seenRow(ev.event_id);
      lastSender = "";
      continue;
    }
    message(ev, {}, ev.event_id, "");
    seenRow(ev.event_id);
  }
  for (const p of r.pending) {
    const ev = { type: "m.room.message", sender: S.me.user_id, content: p.content || {}, origin_server_ts: p.ts };
    const u = p.upload;
    message(ev, { pending: p }, "txn:" + p.txnId, [p.status, p.error || "", u ? Math.floor((100 * u.sent) / (u.total || 1)) : ""].join("/"));
  }
  return out;
}

const RECENT = 24;

// reconcile makes the timeline's elements match the wanted list, keeping
// those whose key and signature are unchanged. It returns how many
// elements it built.
function reconcile(tl, list) {
  const status = tl.querySelector(".tl-status");
  let ref = status ? status.nextSibling : tl.firstChild;
  const old = view.nodes;
  const next = new Map();
  let built = 0;
  for (const w of list) {
    let el = old.get(w.key);
    if (!el || el.sig !== w.sig) {
      const fresh = w.build();
      fresh.sig = w.sig;
      built++;
      if (el) {
        if (el === ref) ref = ref.nextSibling;
        el.remove();
      }
      el = fresh;
    }
    old.delete(w.key);
    next.set(w.key, el);
    if (el === ref) ref = ref.nextSibling;
    else tl.insertBefore(el, ref);
  }
  for (const el of old.values()) el.remove();
  view.nodes = next;
  // The last elements are always laid out ("recent" in the CSS), so the
  // bottom, where new messages arrive, has its real height.
  const els = [...next.values()];
  const recent = new Set(els.slice(-RECENT));
  for (const el of view.recent || []) if (!recent.has(el)) el.classList.remove("recent");
  for (const el of recent) el.classList.add("recent");
  view.recent = recent;
  return built;
}

function renderTimeline(r, { changed, prepended }) {
  const tl = $("timeline");
  const atBottom = tl.scrollHeight - tl.scrollTop - tl.clientHeight < 60;
  const oldHeight = tl.scrollHeight, oldTop = tl.scrollTop;
  renderTimelineStatus(r);
  view.built = reconcile(tl, wanted(r));
  if (changed || atBottom) {
    tl.scrollTop = tl.scrollHeight;
    view.stuck = true;
    requestAnimationFrame(() => { if (view.stuck) tl.scrollTop = tl.scrollHeight; });
  } else if (prepended) tl.scrollTop = oldTop + (tl.scrollHeight - oldHeight);
  // Not enough history to fill the screen: fetch more.
  if (tl.scrollHeight <= tl.clientHeight + 10 && !r.atStart && r.prevBatch && !r.loadingOlder && !r.olderError) loadOlder(r);
}

// renderStats says what the last render did (for tests and measuring).
export const renderStats = () => ({ built: view.built, shown: view.nodes.size });

// jumpTo scrolls to an event and makes it flash, loading older pages
// (five at most) until the timeline has it.
async function jumpTo(id) {
  const r = S.rooms.get(S.current);
  for (let i = 0; r && !view.nodes.has(id) && !r.atStart && r.prevBatch && i < 5; i++) {
    if (r.loadingOlder) break;
    await loadOlder(r);
  }
  const el = view.nodes.get(id);
  if (!el) {
    toast("The original message is further back: scroll up to load it.");
    return;
  }
  el.scrollIntoView({ block: "center", behavior: "smooth" });
  el.classList.remove("flash");
  void el.offsetWidth;
  el.classList.add("flash");
}

// ---------- typing ----------

export function renderTyping(r) {
  let el = $("typing");
  if (!el) {
    el = h("div", { id: "typing", class: "typing", "aria-live": "polite" });
    $("composer").before(el);
  }
  const names = r ? r.typing.map((u) => r.displayName(u)) : [];
  const text = !names.length ? "" : names.length === 1 ? `${names[0]} is typing…` : names.length === 2 ? `${names[0]} and ${names[1]} are typing…` : "Several people are typing…";
  if (el.textContent !== text) el.textContent = text;
  el.hidden = !text;
}

// ---------- receipts ----------

const receiptTimers = new Map();
// sendReceipt tells the room the user read its latest event, once the
// timeline has been still for a moment.
function sendReceipt(r) {
  const last = r.events[r.events.length - 1];
  if (!last?.event_id || !S.me) return;
  const mine = r.receipts.get(S.me.user_id);
  if (mine?.eventId === last.event_id || r.receiptSent === last.event_id) return;
  clearTimeout(receiptTimers.get(r.id));
  receiptTimers.set(r.id, setTimeout(() => {
    receiptTimers.delete(r.id);
    if (S.current !== r.id || document.visibilityState !== "visible" || r.receiptSent === last.event_id) return;
    r.receiptSent = last.event_id;
    api.receipt(r.id, last.event_id).then(() => {
      r.setReceipt(S.me.user_id, last.event_id, Date.now());
    }, () => { r.receiptSent = null; });
  }, 400));
}

// ---------- reactions and deleting ----------

let txnCounter = 0;
export const newTxn = () => `web${Date.now()}.${txnCounter++}`;

// A toggle on its way holds its key until sync brings the change (or
// for five seconds), so a double click sends one reaction, not two.
const reacting = new Map(); // "event ID\u0000key" -> the user's reaction ID when clicked
on("timeline-rendered", (r) => {
  for (const [k, was] of reacting) {
    const [id, key] = k.split("\u0000");
    if (r.byId.has(id) && r.reactions.get(id)?.get(key)?.get(S.me.user_id) !== was) reacting.delete(k);
  }
});
async function toggleReaction(r, ev, key) {
  const k = ev.event_id + "\u0000" + key;
  if (!r || reacting.has(k)) return;
  const mine = r.reactions.get(ev.event_id)?.get(key)?.get(S.me.user_id);
  reacting.set(k, mine);
  const release = () => reacting.delete(k);
  setTimeout(release, 5000);
  try {
    if (mine) await api.redact(r.id, mine, newTxn());
    else await api.sendEvent(r.id, "m.reaction", newTxn(), { "m.relates_to": { rel_type: "m.annotation", event_id: ev.event_id, key } });
  } catch (e) {
    toast("Could not " + (mine ? "remove the reaction: " : "react: ") + errText(e));
    release();
  }
}

function deleteDialog(r, ev) {
  if (!r) return;
  openDialog("Delete this message?", (body, close) => {
    const err = h("p", { class: "error", role: "alert" });
    const btn = h("button", { type: "button", class: "danger", onclick: async () => {
      btn.disabled = true;
      try {
        await api.redact(r.id, ev.event_id, newTxn());
        close();
      } catch (e) {
        err.textContent = errText(e);
        btn.disabled = false;
      }
    } }, "Delete");
    body.append(h("p", {}, ev.sender === S.me.user_id ? "It is removed for everyone in the room." : `It is removed for everyone in the room, though ${r.displayName(ev.sender)} wrote it.`), err,
      h("div", { class: "dlg-actions" }, h("button", { type: "button", class: "secondary", onclick: close, autofocus: true }, "Cancel"), btn));
  });
}

// ---------- scrollback ----------

export async function loadOlder(r) {
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
