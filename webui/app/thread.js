// A thread in a dialog: its root, its replies (those the timeline holds
// and those the node lists), and a form to answer in it. It follows the
// timeline while open ("timeline-rendered" on the bus).
import { api } from "./api.js";
import { h, openDialog, errText, timeFmt, fullFmt } from "./dom.js";
import { on, relatesTo } from "./state.js";
import { snippet, plainBody, avatarEl } from "./message.js";

let open = null; // {roomId, rootId, list, fetched: Map}

on("timeline-rendered", (r) => {
  if (open && open.roomId === r.id) renderList(r);
});

// replies are the thread's replies, oldest first.
function replies(r) {
  const out = new Map(open.fetched);
  for (const id of r.threads.get(open.rootId) || []) out.set(id, r.byId.get(id));
  return [...out.values()].filter((e) => e && relatesTo(e).event_id === open.rootId && !e.unsigned?.redacted_because && !r.redactedIds.has(e.event_id))
    .sort((a, b) => a.origin_server_ts - b.origin_server_ts || (a.event_id < b.event_id ? -1 : 1));
}

// text is a message's whole text, or a line for media and deleted ones.
function text(r, ev) {
  const c = r.shownContent(ev);
  return !ev.unsigned?.redacted_because && ["m.text", "m.notice", "m.emote"].includes(c.msgtype) ? plainBody(c) : snippet(r, ev);
}

function row(r, ev) {
  const ts = ev.origin_server_ts || 0;
  return h("li", { class: "thread-msg", dataset: { id: ev.event_id } },
    avatarEl(r, ev.sender, "small"),
    h("div", { class: "thread-text" },
      h("div", { class: "meta" }, h("span", { class: "sender", title: ev.sender }, r.displayName(ev.sender)),
        h("time", { class: "time", title: fullFmt.format(ts) }, timeFmt.format(ts))),
      h("div", { class: "body" }, text(r, ev))));
}

function renderList(r) {
  const root = r.event(open.rootId);
  const list = replies(r);
  open.list.replaceChildren(root ? row(r, root) : h("li", { class: "muted" }, "The thread's first message is further back."),
    h("li", { class: "thread-count muted" }, list.length === 1 ? "1 reply" : `${list.length} replies`),
    ...list.map((e) => row(r, e)));
}

// openThread shows the thread whose root is rootId.
export function openThread(r, rootId) {
  open = { roomId: r.id, rootId, list: h("ul", { class: "thread-list" }), fetched: new Map() };
  const me = open;
  openDialog("Thread", (body, close) => {
    const input = h("textarea", { rows: 2, placeholder: "Reply in the thread…", "aria-label": "Reply in the thread", class: "thread-input" });
    const err = h("p", { class: "error", role: "alert" });
    const send = h("button", { type: "submit" }, "Reply");
    const form = h("form", { class: "thread-form" }, input, send);
    input.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        form.requestSubmit();
      }
    });
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const text = input.value;
      if (!text.trim()) return;
      err.textContent = "";
      send.disabled = true;
      const last = replies(r).at(-1)?.event_id || rootId;
      try {
        await api.send(r.id, `web${Date.now()}.t${Math.random().toString(36).slice(2, 8)}`, {
          msgtype: "m.text", body: text,
          "m.relates_to": { rel_type: "m.thread", event_id: rootId, is_falling_back: true, "m.in_reply_to": { event_id: last } },
        });
        input.value = "";
      } catch (e) {
        err.textContent = errText(e);
      } finally {
        send.disabled = false;
        input.focus();
      }
    });
    body.append(open.list, err, form, h("div", { class: "dlg-actions" }, h("button", { type: "button", class: "secondary", onclick: close }, "Close")));
    renderList(r);
    setTimeout(() => input.focus());
  }, { onClose: () => { if (open === me) open = null; } }).classList.add("thread-dialog");
  // Replies the timeline has not loaded, from the node (if it lists relations).
  api.threadReplies(r.id, rootId).then((res) => {
    if (open !== me) return;
    for (const e of res.chunk || []) if (e?.event_id) me.fetched.set(e.event_id, e);
    renderList(r);
  }, () => { /* the timeline's replies are all there is */ });
}
