// The composer: writing, replying, editing, sending (with retries),
// pictures and files (button, drag and drop, paste) with progress and
// cancel, and telling the room the user is typing.
import { api } from "./api.js";
import { $, h, errText, toast } from "./dom.js";
import { S, on, relatesTo } from "./state.js";
import { mediaConfig, upload } from "./media.js";
import { renderRoom, newTxn } from "./timeline.js";
import { snippet, plainBody, sizeText } from "./message.js";

// What the next message does: null, or {mode: "reply"|"edit", roomId, ev}.
let compose = null;

const input = () => $("composer-input");

// ---------- reply and edit ----------

function setCompose(c) {
  compose = c;
  let bar = $("compose-bar");
  if (!bar) {
    bar = h("div", { id: "compose-bar", class: "compose-bar", hidden: true });
    $("composer").before(bar);
  }
  if (!c) {
    bar.hidden = true;
    bar.replaceChildren();
    return;
  }
  const r = S.rooms.get(c.roomId);
  const label = c.mode === "edit" ? "Editing your message" : `Replying to ${r.displayName(c.ev.sender)}`;
  bar.replaceChildren(h("div", { class: "compose-what" }, h("strong", {}, label), h("span", { class: "quote-text" }, snippet(r, c.ev))),
    h("button", { type: "button", class: "ghost small", "aria-label": c.mode === "edit" ? "Cancel editing" : "Cancel reply", onclick: cancelCompose }, "✕"));
  bar.hidden = false;
}

function cancelCompose() {
  if (compose?.mode === "edit") {
    input().value = "";
    grow();
  }
  setCompose(null);
  input().focus({ preventScroll: true });
}

on("reply", (r, ev) => {
  if (compose?.mode === "edit") input().value = "";
  setCompose({ mode: "reply", roomId: r.id, ev });
  input().focus();
});
on("edit", (r, ev) => {
  setCompose({ mode: "edit", roomId: r.id, ev });
  input().value = plainBody(r.shownContent(ev));
  grow();
  input().focus();
});
on("open-room", (id) => {
  if (compose && compose.roomId !== id) setCompose(null);
});
on("retry", (r, p) => sendPending(r, p));
on("discard", (r, p) => {
  r.pending = r.pending.filter((x) => x !== p);
  renderRoom();
});
on("cancel-upload", (r, p) => p.upload?.ctrl.abort());

function grow() {
  const el = input();
  el.style.height = "auto";
  el.style.height = Math.min(el.scrollHeight + 2, 160) + "px";
}

// ---------- sending ----------

// sendMessage sends what the user wrote: a new message, a reply, or an edit.
export function sendMessage(r, text) {
  stopTyping(r);
  const c = compose && compose.roomId === r.id ? compose : null;
  setCompose(null);
  if (c?.mode === "edit") return sendEdit(r, c.ev, text);
  let content = { msgtype: "m.text", body: text };
  if (text.startsWith("/me ")) content = { msgtype: "m.emote", body: text.slice(4) };
  if (c?.mode === "reply") content["m.relates_to"] = replyRelation(c.ev);
  queue(r, content);
}

// replyRelation answers ev, in its thread if it is in one.
function replyRelation(ev) {
  const rel = relatesTo(ev);
  if (rel.rel_type === "m.thread" && typeof rel.event_id === "string") {
    return { rel_type: "m.thread", event_id: rel.event_id, is_falling_back: false, "m.in_reply_to": { event_id: ev.event_id } };
  }
  return { "m.in_reply_to": { event_id: ev.event_id } };
}

async function sendEdit(r, ev, text) {
  const old = r.shownContent(ev);
  if (!text.trim() || text === plainBody(old)) return;
  const fresh = { msgtype: old.msgtype === "m.emote" ? "m.emote" : "m.text", body: text };
  const content = { ...fresh, body: "* " + text, "m.new_content": fresh, "m.relates_to": { rel_type: "m.replace", event_id: ev.event_id } };
  try {
    await api.send(r.id, newTxn(), content);
  } catch (e) {
    toast("Could not edit: " + errText(e));
  }
}

function queue(r, content, extra = {}) {
  const p = { txnId: newTxn(), content, status: "sending", ts: Date.now(), ...extra };
  r.pending.push(p);
  renderRoom();
  $("timeline").scrollTop = $("timeline").scrollHeight;
  if (content) sendPending(r, p);
  return p;
}

export async function sendPending(r, p) {
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

// ---------- pictures and files ----------

const KINDS = [["image/", "m.image"], ["video/", "m.video"], ["audio/", "m.audio"]];

async function imageSize(file) {
  try {
    const bmp = await createImageBitmap(file);
    const size = { w: bmp.width, h: bmp.height };
    bmp.close();
    return size;
  } catch {
    return {};
  }
}

// sendFiles uploads each file and sends it as a message, after checking
// it against the node's upload limit.
export async function sendFiles(r, files) {
  const limit = (await mediaConfig())["m.upload.size"];
  for (const file of files) {
    if (limit && file.size > limit) {
      toast(`${file.name || "This file"} is ${sizeText(file.size)}: this node takes files up to ${sizeText(limit)}.`);
      continue;
    }
    sendFile(r, file);
  }
}

async function sendFile(r, file) {
  const mimetype = file.type || "application/octet-stream";
  const msgtype = KINDS.find(([prefix]) => mimetype.startsWith(prefix))?.[1] || "m.file";
  const name = file.name || (msgtype === "m.image" ? "picture." + (mimetype.split("/")[1] || "png") : "file");
  const ctrl = new AbortController();
  const preview = msgtype === "m.image" ? URL.createObjectURL(file) : "";
  const reply = compose?.mode === "reply" && compose.roomId === r.id ? compose.ev : null;
  if (reply) setCompose(null);
  const p = queue(r, null, { status: "uploading", upload: { name, size: file.size, sent: 0, total: file.size, ctrl, preview } });
  let lastPct = 0;
  try {
    const info = { mimetype, size: file.size, ...(msgtype === "m.image" ? await imageSize(file) : {}) };
    const url = await upload(file, {
      filename: name,
      signal: ctrl.signal,
      onProgress: (sent, total) => {
        p.upload.sent = sent;
        p.upload.total = total || file.size;
        const pct = Math.floor((100 * sent) / (total || 1));
        if (pct !== lastPct && S.current === r.id) {
          lastPct = pct;
          renderRoom();
        }
      },
    });
    const content = { msgtype, body: name, filename: name, url, info };
    if (reply) content["m.relates_to"] = replyRelation(reply);
    p.content = content;
    p.upload = null;
    if (preview) URL.revokeObjectURL(preview);
    sendPending(r, p);
  } catch (e) {
    if (preview) URL.revokeObjectURL(preview);
    if (e?.name === "AbortError") {
      r.pending = r.pending.filter((x) => x !== p);
    } else {
      p.status = "failed";
      p.error = errText(e);
    }
    if (S.current === r.id) renderRoom();
  }
}

// ---------- typing ----------

const TYPING_TIMEOUT = 30000; // what the node is told
const TYPING_RESEND = 20000; // said again while typing goes on
const TYPING_IDLE = 5000; // no keys for this long: stopped
let typing = null; // {roomId, at, idle}

function typed(r) {
  if (!input().value.trim()) return stopTyping(r);
  const now = Date.now();
  if (!typing || typing.roomId !== r.id || now - typing.at > TYPING_RESEND) {
    if (typing && typing.roomId !== r.id) stopTyping(S.rooms.get(typing.roomId));
    api.typing(r.id, S.me.user_id, true, TYPING_TIMEOUT).catch(() => {});
    typing = { roomId: r.id, at: now, idle: null };
  }
  clearTimeout(typing.idle);
  typing.idle = setTimeout(() => stopTyping(r), TYPING_IDLE);
}

function stopTyping(r) {
  if (!typing || !r || typing.roomId !== r.id) return;
  clearTimeout(typing.idle);
  typing = null;
  api.typing(r.id, S.me.user_id, false).catch(() => {});
}

// ---------- wiring ----------

// wireComposer adds the attach button and the composer's own listeners
// (app.js wires Enter and submit, which call sendMessage).
export function wireComposer() {
  const cur = () => S.rooms.get(S.current);
  const file = h("input", { type: "file", multiple: true, hidden: true, id: "attach-input", "aria-hidden": "true", tabindex: "-1" });
  const attach = h("button", { type: "button", id: "attach-btn", class: "ghost attach", title: "Send a picture or file", "aria-label": "Send a picture or file", onclick: () => file.click() });
  // A paper clip (static markup: no emoji font needed).
  attach.innerHTML = '<svg viewBox="0 0 24 24" width="20" height="20" aria-hidden="true" focusable="false"><path fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round" d="M21 11.5l-8.6 8.6a5.5 5.5 0 0 1-7.8-7.8l9.2-9.2a3.7 3.7 0 0 1 5.2 5.2l-9.2 9.2a1.8 1.8 0 0 1-2.6-2.6l8.5-8.5"/></svg>';
  file.addEventListener("change", () => {
    const r = cur();
    if (r && file.files.length) sendFiles(r, [...file.files]);
    file.value = "";
  });
  input().before(attach, file);
  input().addEventListener("input", () => cur() && typed(cur()));
  input().addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && compose) {
      ev.preventDefault();
      ev.stopPropagation();
      cancelCompose();
    } else if (ev.key === "ArrowUp" && !input().value && cur()) {
      // Up in an empty composer edits the user's last message.
      const r = cur();
      const mine = [...r.events].reverse().find((e) => e.sender === S.me.user_id && e.type === "m.room.message" && e.content?.body !== undefined && relatesTo(e).rel_type !== "m.replace");
      if (mine && ["m.text", "m.emote"].includes(r.shownContent(mine).msgtype)) {
        ev.preventDefault();
        setCompose({ mode: "edit", roomId: r.id, ev: mine });
        input().value = plainBody(r.shownContent(mine));
        grow();
      }
    }
  });
  input().addEventListener("paste", (ev) => {
    const files = [...(ev.clipboardData?.files || [])];
    if (files.length && cur()) {
      ev.preventDefault();
      sendFiles(cur(), files);
    }
  });
  const zone = $("room");
  const hasFiles = (ev) => [...(ev.dataTransfer?.types || [])].includes("Files");
  zone.addEventListener("dragover", (ev) => {
    if (!hasFiles(ev) || !cur()) return;
    ev.preventDefault();
    zone.classList.add("dropping");
  });
  zone.addEventListener("dragleave", (ev) => {
    if (ev.target === zone || !zone.contains(ev.relatedTarget)) zone.classList.remove("dropping");
  });
  zone.addEventListener("drop", (ev) => {
    zone.classList.remove("dropping");
    if (!hasFiles(ev) || !cur()) return;
    ev.preventDefault();
    sendFiles(cur(), [...ev.dataTransfer.files]);
  });
}
