// Notifications: the browser's Notification API while the tab is hidden,
// for messages of others in rooms that are not muted. The browser is asked
// for permission only when the user says so (a settings switch or the
// dismissible banner), never on load. Muting a room is a push rule on the
// node (an override rule for the room with no actions, as other Matrix
// apps make it), so the node's unread counts skip the room too.
import { api } from "./api.js";
import { h, toast, errText } from "./dom.js";
import { S } from "./state.js";

const PREFS = "parley.notify";
// MAX_PER_SYNC bounds the notifications one /sync batch may raise: a burst
// after a long absence shows a few, not hundreds.
const MAX_PER_SYNC = 3;

const supported = () => typeof window.Notification === "function";
export const notifySupported = supported;

function prefs() {
  try {
    return JSON.parse(localStorage.getItem(PREFS) || "{}") || {};
  } catch {
    return {};
  }
}
function savePrefs(p) {
  localStorage.setItem(PREFS, JSON.stringify(p));
}

// notifyEnabled: the user turned notifications on and the browser allows them.
export function notifyEnabled() {
  return supported() && Notification.permission === "granted" && prefs().on === true;
}

// setNotify turns notifications on (asking the browser first, if it has
// not been asked) or off. It resolves to whether they are on.
export async function setNotify(on) {
  const p = prefs();
  if (!on) {
    p.on = false;
    savePrefs(p);
    renderNotifyBanner();
    return false;
  }
  if (!supported()) throw new Error("This browser cannot show notifications.");
  let perm = Notification.permission;
  if (perm === "default") perm = await Notification.requestPermission();
  p.on = perm === "granted";
  p.asked = true;
  savePrefs(p);
  renderNotifyBanner();
  if (perm === "denied") throw new Error("The browser blocks notifications for this page: allow them in the site's settings.");
  return p.on;
}

// ---------- muted rooms ----------

const muted = new Set();

export const isMuted = (roomId) => muted.has(roomId);

// noteRules is told of the user's account data events from /sync (by
// roomlist.js's noteSync) and keeps the muted rooms of m.push_rules.
export function noteRules(events) {
  for (const ev of events || []) {
    if (ev.type === "m.push_rules") readRules(ev.content?.global);
  }
}

// A mute rule: an override rule named by the room's ID, matching its
// events, with no actions.
function readRules(global) {
  muted.clear();
  for (const r of global?.override || []) {
    const conds = r.conditions || [];
    if (r.enabled !== false && r.rule_id?.startsWith("!") && !(r.actions || []).includes("notify") &&
        conds.length === 1 && conds[0].kind === "event_match" && conds[0].key === "room_id" && conds[0].pattern === r.rule_id) {
      muted.add(r.rule_id);
    }
  }
}

export async function setMuted(roomId, on) {
  if (on) {
    await api.putPushRule("override", roomId, { conditions: [{ kind: "event_match", key: "room_id", pattern: roomId }], actions: [] });
    muted.add(roomId);
  } else {
    try {
      await api.deletePushRule("override", roomId);
    } catch (e) {
      if (e.errcode !== "M_NOT_FOUND") throw e;
    }
    muted.delete(roomId);
  }
}

// ---------- the sync hook ----------

// notifySync is called by the sync loop (sync.js, at the end of
// processSync) with each /sync response: it raises a notification for
// new messages of others while the tab is hidden. The first sync after loading raises
// none (those messages are not new to the user's eyes, only to the page).
export function notifySync(res, initial) {
  renderNotifyBanner();
  if (initial) return;
  let shown = 0;
  for (const [roomId, jr] of Object.entries(res.rooms?.join || {})) {
    for (const ev of jr.timeline?.events || []) {
      if (shown < MAX_PER_SYNC && notifyEvent(roomId, ev)) shown++;
    }
  }
}

// notifyEvent raises a notification for one new event if it is a message
// of someone else in a room not muted, the tab is hidden and the user
// turned notifications on. It returns whether it did.
export function notifyEvent(roomId, ev) {
  if (!notifyEnabled() || document.visibilityState === "visible") return false;
  if (!S.me || ev.sender === S.me.user_id || isMuted(roomId)) return false;
  const c = ev.content || {};
  if (ev.type !== "m.room.message" || typeof c.body !== "string" || c.msgtype === "m.notice") return false;
  if (c["m.relates_to"]?.rel_type === "m.replace") return false; // an edit
  const r = S.rooms.get(roomId);
  const who = r ? r.displayName(ev.sender) : ev.sender;
  const title = r && r.name() !== who ? `${who} in ${r.name()}` : who;
  const body = c.msgtype === "m.image" ? "sent a picture" : c.msgtype === "m.file" ? "sent a file" : c.body.slice(0, 200);
  try {
    const n = new Notification(title, { body, tag: roomId });
    n.onclick = () => {
      window.focus();
      location.hash = "#/room/" + encodeURIComponent(roomId);
      n.close();
    };
    return true;
  } catch {
    return false; // e.g. a browser that wants a service worker for them
  }
}

// ---------- the banner that offers them ----------

// renderNotifyBanner shows, above the room list, an offer to turn
// notifications on, until the user answers or dismisses it. Nothing is
// asked of the browser until they click.
export function renderNotifyBanner() {
  const slot = document.getElementById("notify-offer");
  if (!slot) return;
  const p = prefs();
  const show = supported() && S.me && !p.asked && !p.dismissed && Notification.permission === "default" && S.rooms.size > 0;
  slot.hidden = !show;
  if (!show) return slot.replaceChildren();
  if (slot.childElementCount) return; // already offered
  const yes = h("button", { type: "button", class: "small", onclick: async () => {
    yes.disabled = true;
    try {
      const on = await setNotify(true);
      toast(on ? "Notifications are on. Turn them off in Settings." : "Notifications stay off.");
    } catch (e) {
      toast(errText(e));
    }
  } }, "Turn on");
  const no = h("button", { type: "button", class: "ghost small", onclick: () => {
    savePrefs({ ...prefs(), dismissed: true });
    renderNotifyBanner();
  } }, "Not now");
  slot.replaceChildren(h("p", {}, "Get a notification for new messages while this tab is in the background?"), h("div", { class: "offer-actions" }, yes, no));
}
