// One event of the timeline as DOM: a message with its sender, quote,
// body or media, "(edited)", reactions, "seen by" and actions, or a line
// saying what a state event changed. It builds elements and never keeps
// them: the timeline (timeline.js) decides when one is built again. Clicks
// go to the handlers the timeline passes in (act).
import { api } from "./api.js";
import { h, timeFmt, fullFmt, openDialog, toast, errText } from "./dom.js";
import { S, emit, relatesTo } from "./state.js";
import { mediaURL } from "./media.js";
import { avatarFor } from "./avatar.js";

// avatarEl is a member's avatar in room r, from their member event's
// name and picture; size "" (in a message), "small" or "tiny" (seen by).
export function avatarEl(r, userId, size = "") {
  const px = size === "tiny" ? 16 : size === "small" ? 32 : 26;
  return avatarFor(userId, r.displayName(userId), r.avatarURL(userId), { size: px });
}

export const QUICK_REACTIONS = ["👍", "❤️", "😂", "🎉", "😮", "😢", "🙏", "👀"];

export function sizeText(n) {
  if (!(n >= 0)) return "";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10240 ? 1 : 0)} KB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(n < 10 * 1024 * 1024 ? 1 : 0)} MB`;
  return `${(n / 1024 ** 3).toFixed(1)} GB`;
}

// eventLine says in words what a state event did, or null to show nothing.
export function eventLine(r, ev) {
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
          if (prev === "join") {
            const before = ev.unsigned?.prev_content || {};
            if (c.displayname !== before.displayname) return `${before.displayname || ev.state_key} is now ${c.displayname || ev.state_key}`;
            if (c.avatar_url !== before.avatar_url) return `${c.displayname || ev.state_key} changed their picture`;
            return null;
          }
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
    default:
      return null;
  }
}

// isMessage: an event shown as a message (not an edit, reaction or redaction).
export function isMessage(ev) {
  if (ev.hidden) return false;
  if (ev.type === "m.room.message") return relatesTo(ev).rel_type !== "m.replace";
  return ev.type === "m.sticker" || ev.type === "m.room.encrypted";
}

// plainBody is a message's text without a reply fallback ("> <@a:b> ..."),
// which older clients put in front.
export function plainBody(c) {
  let b = typeof c.body === "string" ? c.body : "";
  if (c["m.relates_to"]?.["m.in_reply_to"] && b.startsWith("> <")) {
    const lines = b.split("\n");
    let i = 0;
    while (i < lines.length && lines[i].startsWith(">")) i++;
    if (lines[i] === "") i++;
    b = lines.slice(i).join("\n");
  }
  return b;
}

// snippet is a short line for a quote or a notification.
export function snippet(r, ev) {
  if (!ev) return "";
  if (ev.unsigned?.redacted_because || (ev.type === "m.room.message" && ev.content?.body === undefined)) return "Message deleted";
  const c = r.shownContent(ev);
  switch (c.msgtype) {
    case "m.image": return "🖼 Picture";
    case "m.video": return "🎞 Video";
    case "m.audio": return "🔊 Audio";
    case "m.file": return "📄 " + (c.filename || c.body || "File");
  }
  const b = plainBody(c).replace(/\s+/g, " ").trim();
  return b.length > 140 ? b.slice(0, 139) + "…" : b;
}

// quoteTarget is the event a message quotes: its reply's, or its thread's root.
export function quoteTarget(ev) {
  const rel = relatesTo(ev);
  const reply = rel["m.in_reply_to"]?.event_id;
  if (rel.rel_type === "m.thread" && typeof rel.event_id === "string") {
    return { id: rel.is_falling_back === false && typeof reply === "string" ? reply : rel.event_id, thread: rel.event_id };
  }
  return typeof reply === "string" ? { id: reply, thread: null } : null;
}

// fetchQuoted asks the node for a quoted event the timeline has not loaded.
function fetchQuoted(r, id) {
  if (r.fetched.has(id)) return;
  if (r.fetched.size > 500) r.fetched.delete(r.fetched.keys().next().value);
  r.fetched.set(id, null);
  api.event(r.id, id).then((ev) => {
    r.fetched.set(id, ev);
    emit("quoted-loaded", r, id);
  }, () => {
    r.fetched.set(id, { event_id: id, missing: true });
    emit("quoted-loaded", r, id);
  });
}

function quoteEl(r, q, act) {
  const target = r.event(q.id);
  if (!target) fetchQuoted(r, q.id);
  const who = target?.sender ? r.displayName(target.sender) : "";
  const text = !target ? "Loading…" : target.missing ? "A message this node cannot show" : snippet(r, target);
  const quote = h("button", { type: "button", class: "quote", title: "Show the original", onclick: () => act.jump(q.id) },
    q.thread ? h("span", { class: "thread-tag" }, "in thread") : null,
    who ? h("span", { class: "quote-who" }, who) : null,
    h("span", { class: "quote-text" }, text));
  if (!q.thread) return quote;
  return [quote, h("button", { type: "button", class: "link-btn open-thread", onclick: () => act.thread(q.thread) }, "Open the thread")];
}

// lazily runs load once el is near the screen.
const lazyLoads = new WeakMap();
let observer = null;
function lazily(el, load) {
  if (!("IntersectionObserver" in window)) return load();
  observer ??= new IntersectionObserver((entries) => {
    for (const e of entries) {
      if (!e.isIntersecting) continue;
      observer.unobserve(e.target);
      lazyLoads.get(e.target)?.();
    }
  }, { root: document.getElementById("timeline"), rootMargin: "600px 0px" });
  lazyLoads.set(el, load);
  observer.observe(el);
}

// viewImage opens a picture full size in a dialog, with a download link.
export function viewImage(c) {
  openDialog(c.body || "Picture", (body, close) => {
    const img = h("img", { class: "viewer-img", alt: c.body || "Picture" });
    const status = h("p", { class: "muted" }, "Loading…");
    const dl = fileLink(c, "Download");
    body.append(status, img, h("div", { class: "dlg-actions" }, dl, h("button", { type: "button", onclick: close, autofocus: true }, "Close")));
    mediaURL(c.url).then((src) => {
      img.src = src;
      status.remove();
    }, (e) => { status.textContent = "Could not load the picture: " + errText(e); });
  }).classList.add("viewer");
}

// known holds the blob: URLs already had, so that an element built again
// (a reaction came) shows its media at once.
const known = new Map(); // key -> blob: URL
function had(uri, size) {
  return known.get(size ? `${uri}#${size.width}x${size.height}` : uri);
}
function fetchMedia(uri, size) {
  return mediaURL(uri, size).then((u) => {
    if (known.size > 300) known.delete(known.keys().next().value);
    known.set(size ? `${uri}#${size.width}x${size.height}` : uri, u);
    return u;
  });
}

// fileLink is a link that downloads the content under its file name: the
// first click fetches it into a blob: URL, which the link then names.
function fileLink(c, label) {
  const name = c.filename || c.body || "file";
  const a = h("a", { class: "file-link", href: had(c.url) || "#", download: name, title: "Download " + name }, label);
  a.addEventListener("click", (ev) => {
    if (a.href.startsWith("blob:")) return;
    ev.preventDefault();
    a.setAttribute("aria-busy", "true");
    fetchMedia(c.url).then((src) => {
      a.href = src;
      a.removeAttribute("aria-busy");
      a.click();
    }, (e) => {
      a.removeAttribute("aria-busy");
      toast("Could not download " + name + ": " + errText(e));
    });
  });
  return a;
}

function mediaEl(r, c) {
  const info = c.info && typeof c.info === "object" ? c.info : {};
  if (typeof c.url !== "string") {
    return h("div", { class: "body" }, c.file ? "An encrypted attachment (not supported by this app)" : plainBody(c));
  }
  const name = c.filename || c.body || "file";
  const meta = [info.mimetype, sizeText(info.size)].filter(Boolean).join(" · ");
  if (c.msgtype === "m.image" || c.msgtype === undefined) {
    const dim = (x) => (Number.isFinite(x) && x > 0 && x < 1e6 ? Math.round(x) : 0); // numbers only: they go into a style
    const w = dim(info.w), hgt = dim(info.h);
    const scale = w && hgt ? Math.min(1, 320 / w, 240 / hgt) : 0;
    const style = scale ? `width:${Math.max(40, Math.round(w * scale))}px;aspect-ratio:${w}/${hgt}` : "";
    const thumb = { width: 640, height: 480, method: "scale" };
    const img = h("img", { alt: c.body || "Picture", style, src: had(c.url, thumb) || had(c.url) || null });
    const box = h("button", { type: "button", class: "media image", title: `${name}${meta ? " (" + meta + ")" : ""}`, "aria-label": "Open picture " + name }, img);
    const load = () => {
      box.classList.remove("broken");
      box.querySelector(".unavailable")?.remove();
      // The server's thumbnail; the content itself if there is none (a
      // format it does not thumbnail), unless it is large.
      fetchMedia(c.url, thumb)
        .catch(() => (info.size && info.size > 8 * 1024 * 1024 ? Promise.reject(new Error("too large to preview")) : fetchMedia(c.url)))
        .then((src) => { img.src = src; }, () => {
          // Its sender's node may be off, and no other node have it yet.
          box.classList.add("broken");
          box.append(h("span", { class: "unavailable" }, "Picture unavailable: click to try again"));
        });
    };
    box.addEventListener("click", () => (box.classList.contains("broken") ? load() : viewImage(c)));
    if (!img.src) lazily(box, load);
    return box;
  }
  const icon = c.msgtype === "m.video" ? "🎞" : c.msgtype === "m.audio" ? "🔊" : "📄";
  const row = h("div", { class: "media file" }, h("span", { class: "file-icon", "aria-hidden": "true" }, icon),
    h("span", { class: "file-name" }, name, meta ? h("span", { class: "muted" }, " · " + meta) : null), fileLink(c, "Download"));
  if (c.msgtype === "m.video" || c.msgtype === "m.audio") {
    const play = h("button", { type: "button", class: "secondary small" }, "Play");
    play.addEventListener("click", () => {
      play.disabled = true;
      mediaURL(c.url).then((src) => {
        const player = h(c.msgtype === "m.video" ? "video" : "audio", { controls: true, src, class: "player" });
        row.after(player);
        play.remove();
        player.play().catch(() => {});
      }, (e) => { play.disabled = false; toast(errText(e)); });
    });
    row.append(play);
  }
  return row;
}

function reactionsEl(r, ev, act) {
  const keys = r.reactions.get(ev.event_id);
  if (!keys || !keys.size) return null;
  const me = S.me.user_id;
  return h("div", { class: "reactions" }, [...keys].filter(([, who]) => who.size).map(([key, who]) => {
    const names = [...who.keys()].map((u) => (u === me ? "You" : r.displayName(u)));
    const mine = who.has(me);
    return h("button", {
      type: "button", class: "reaction" + (mine ? " mine" : ""), "aria-pressed": String(mine),
      title: `${names.join(", ")} reacted with ${key}`, dataset: { key },
      onclick: () => act.react(ev, key),
    }, h("span", { class: "rkey" }, key), h("span", { class: "rcount" }, String(who.size)));
  }));
}

export function seenEl(r, users) {
  if (!users?.length) return null;
  const names = users.map((u) => r.displayName(u));
  return h("div", { class: "seen", title: "Seen by " + names.join(", ") },
    h("span", { class: "sr-only" }, "Seen by " + names.join(", ")),
    users.slice(0, 5).map((u) => avatarEl(r, u, "tiny")),
    users.length > 5 ? h("span", { class: "more" }, "+" + (users.length - 5)) : null);
}

function pickerEl(ev, act, close) {
  return h("div", { class: "picker", role: "menu", "aria-label": "React" }, QUICK_REACTIONS.map((k) => h("button", {
    type: "button", role: "menuitem", class: "ghost", "aria-label": "React with " + k, dataset: { key: k },
    onclick: (e) => { e.stopPropagation(); close(); act.react(ev, k); },
  }, k)));
}

function actionsEl(r, ev, act, msg) {
  if (!ev.event_id || msg.classList.contains("redacted")) return null;
  const own = ev.sender === S.me.user_id;
  const c = r.shownContent(ev);
  const btn = (cls, label, text, f) => h("button", { type: "button", class: "ghost small " + cls, "aria-label": label, title: label, onclick: (e) => { e.stopPropagation(); f(); } }, text);
  const bar = h("div", { class: "actions" });
  const closePicker = () => msg.querySelector(".picker")?.remove();
  if (r.canSend("m.reaction")) {
    bar.append(btn("act-react", "React", "☺+", () => {
      if (msg.querySelector(".picker")) return closePicker();
      msg.append(pickerEl(ev, act, closePicker));
      msg.querySelector(".picker button")?.focus();
    }));
  }
  if (r.canSend("m.room.message")) {
    bar.append(btn("act-reply", "Reply", "↩", () => act.reply(ev)));
    const rel = relatesTo(ev);
    bar.append(btn("act-thread", "Reply in a thread", "🧵", () => act.thread(rel.rel_type === "m.thread" && typeof rel.event_id === "string" ? rel.event_id : ev.event_id)));
  }
  if (own && r.canSend("m.room.message") && (c.msgtype === "m.text" || c.msgtype === "m.emote" || c.msgtype === "m.notice")) bar.append(btn("act-edit", "Edit", "✎", () => act.edit(ev)));
  if (r.canRedact(ev)) bar.append(btn("act-delete", "Delete", "🗑", () => act.del(ev)));
  return bar.childElementCount ? bar : null;
}

// messageEl builds a message. opts: first (it starts a group: avatar,
// name and time), pending ({status, error, upload} while sending).
export function messageEl(r, ev, opts, act) {
  const { first, pending } = opts;
  const own = ev.sender === S.me.user_id;
  const redacted = !pending && (ev.unsigned?.redacted_because || (ev.type === "m.room.message" && ev.content?.body === undefined));
  const c = redacted ? {} : pending ? ev.content || {} : r.shownContent(ev);
  const edited = !pending && !redacted && !!r.latestEdit(ev);
  const isMedia = ["m.image", "m.file", "m.video", "m.audio"].includes(c.msgtype) || ev.type === "m.sticker";
  const cls = ["msg", first && "first", own && "own", pending && "pending", pending?.status === "failed" && "failed", c.msgtype === "m.emote" && "emote", c.msgtype === "m.notice" && "notice", redacted && "redacted", isMedia && "has-media"].filter(Boolean).join(" ");
  const ts = ev.origin_server_ts || Date.now();
  const meta = first ? h("div", { class: "meta" }, avatarEl(r, ev.sender),
    h("span", { class: "sender", title: ev.sender }, r.displayName(ev.sender)),
    h("time", { class: "time", datetime: new Date(ts).toISOString(), title: fullFmt.format(ts) }, timeFmt.format(ts))) : null;
  const el = h("div", { class: cls, dataset: { id: ev.event_id || "" }, title: first ? null : timeFmt.format(ts) }, meta);
  const q = redacted ? null : quoteTarget(ev);
  if (q) el.append(...[quoteEl(r, q, act)].flat());
  if (redacted) el.append(h("div", { class: "body" }, "Message deleted"));
  else if (ev.type === "m.room.encrypted") el.append(h("div", { class: "body undecrypted" }, "An encrypted message this node could not read"));
  else if (pending?.upload) el.append(uploadEl(pending, act));
  else if (isMedia) el.append(mediaEl(r, ev.type === "m.sticker" ? { ...c, msgtype: "m.image" } : c));
  else el.append(h("div", { class: "body" }, c.msgtype === "m.emote" ? `* ${r.displayName(ev.sender)} ${plainBody(c)}` : plainBody(c)));
  if (edited) el.append(h("span", { class: "edited", title: "Edited " + fullFmt.format(r.latestEdit(ev).origin_server_ts || ts) }, "(edited)"));
  const inThread = !pending && !redacted && !q && r.threadCount(ev);
  if (inThread) el.append(h("button", { type: "button", class: "link-btn open-thread", onclick: () => act.thread(ev.event_id) }, inThread === 1 ? "1 reply in thread" : `${inThread} replies in thread`));
  if (!pending && !redacted) {
    const reactions = reactionsEl(r, ev, act);
    if (reactions) el.append(reactions);
    const bar = actionsEl(r, ev, act, el);
    if (bar) el.append(bar);
  }
  if (pending && !pending.upload) el.append(pendingState(pending, act));
  else if (pending?.status === "failed") el.append(pendingState(pending, act));
  return el;
}

function pendingState(p, act) {
  const state = h("div", { class: "state", role: p.status === "failed" ? "alert" : null });
  if (p.status === "failed") {
    state.append(`Not sent: ${p.error}`, p.content ? h("button", { type: "button", class: "secondary small", onclick: () => act.retry(p) }, "Retry") : null,
      h("button", { type: "button", class: "ghost small", onclick: () => act.discard(p) }, "Discard"));
  } else {
    state.append(p.status === "sent" ? "Sent, waiting for the room…" : h("span", { class: "spinner", "aria-hidden": "true" }), p.status === "sent" ? "" : " Sending…");
  }
  return state;
}

// uploadEl shows a file on its way up: a preview for pictures, progress, Cancel.
function uploadEl(p, act) {
  const u = p.upload;
  const pct = u.total ? Math.floor((100 * u.sent) / u.total) : 0;
  return h("div", { class: "media upload" },
    u.preview ? h("img", { src: u.preview, alt: "", class: "upload-preview" }) : h("span", { class: "file-icon", "aria-hidden": "true" }, "📄"),
    h("div", { class: "upload-info" },
      h("span", { class: "file-name" }, u.name, h("span", { class: "muted" }, " · " + sizeText(u.size))),
      p.status === "uploading" ? h("progress", { max: 100, value: pct, "aria-label": "Uploading " + u.name }) : h("span", { class: "muted" }, p.status === "failed" ? "" : "Sending…")),
    p.status === "uploading" ? h("button", { type: "button", class: "secondary small", onclick: () => act.cancel(p) }, "Cancel") : null);
}
