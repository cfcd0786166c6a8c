// The open room: its header, timeline, scrollback and sending messages.
import { api } from "./api.js";
import { $, h, errText, timeFmt, fullFmt, dayLabel } from "./dom.js";
import { S, markSeen } from "./state.js";
import { renderMembers } from "./members.js";

// ---------- rendering: room ----------

export function renderRoom({ changed = false, prepended = 0, fromSync = false } = {}) {
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

// ---------- sending ----------

let txnCounter = 0;
export function sendMessage(r, text) {
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
