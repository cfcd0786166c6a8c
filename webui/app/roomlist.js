// The sidebar's list of rooms and invites: each room with its avatar, its
// unread count and mentions (the node's unread_notifications), most
// recently active first; direct chats named after the other person; the
// total unread in the tab's title.
import { api } from "./api.js";
import { $, h, toast, errText } from "./dom.js";
import { S, openWhenReady } from "./state.js";
import { go } from "./router.js";
import { avatarFor } from "./avatar.js";
import { noteDirect, dmPartner, addDirect } from "./directory.js";
import { noteMyMember } from "./profile.js";
import { isMuted, noteRules } from "./notify.js";

// ---------- what /sync says beyond the timeline ----------

// counts holds each joined room's unread_notifications as last synced.
const counts = new Map(); // roomId -> {notes, highlights}

// noteSync is called by the sync loop (sync.js, at the start of
// processSync) with each /sync response, before the rooms are updated: it
// keeps each room's unread counts, the user's direct chats (m.direct),
// the muted rooms (m.push_rules) and follows changes of the user's own
// profile.
export function noteSync(res, initial) {
  const data = res.account_data?.events || [];
  noteDirect(data);
  noteRules(data);
  // A sync with account data alone renders no room: the list shows the
  // change (a direct chat's name, a muted mark) all the same.
  if (!initial && data.some((ev) => ev.type === "m.direct" || ev.type === "m.push_rules")) queueMicrotask(renderRoomList);
  for (const [id, jr] of Object.entries(res.rooms?.join || {})) {
    const u = jr.unread_notifications;
    if (u) counts.set(id, { notes: u.notification_count || 0, highlights: u.highlight_count || 0 });
    if (initial) continue;
    for (const ev of jr.timeline?.events || []) {
      if (ev.type === "m.room.member" && ev.state_key === S.me?.user_id) noteMyMember(ev.content);
    }
  }
  for (const id of Object.keys(res.rooms?.leave || {})) counts.delete(id);
}

// unreadOf is a room's unread messages and mentions: the node's counts,
// capped by the messages this page holds past the user's seen marker (so
// a room read here shows none until the node hears a read receipt); none
// for the room in view.
export function unreadOf(r) {
  if (r.id === S.current && document.visibilityState === "visible") return { notes: 0, highlights: 0 };
  const local = typeof r.unread === "function" ? r.unread() : Infinity;
  const c = counts.get(r.id);
  if (!c) return { notes: Number.isFinite(local) ? local : 0, highlights: 0 };
  const notes = Math.min(c.notes, local);
  return { notes, highlights: notes ? Math.min(c.highlights, notes) : 0 };
}

// profiles caches the profile of a direct chat's other person while their
// member event in the room carries no display name (an invite made by
// their inviter's node does not).
const profiles = new Map(); // userId -> {displayname, avatar_url} | "pending"

function personOf(r, userId) {
  const m = r.st("m.room.member", userId);
  if (m?.displayname) return { displayname: m.displayname, avatar_url: m.avatar_url };
  // Another room may have their profile (a join carries it).
  for (const other of S.rooms.values()) {
    const o = other.st("m.room.member", userId);
    if (o?.membership === "join" && o.displayname) return { displayname: o.displayname, avatar_url: o.avatar_url };
  }
  const p = profiles.get(userId);
  if (p === undefined) {
    profiles.set(userId, "pending");
    api.profile(userId).then((got) => { profiles.set(userId, got || {}); renderRoomList(); }, () => profiles.set(userId, {}));
  }
  return p && p !== "pending" ? p : { avatar_url: m?.avatar_url };
}

// roomLabel is what the list calls a room: its name, or for a direct
// chat without one, the other person's name.
export function roomLabel(r) {
  if (r.st("m.room.name")?.name) return r.name();
  const other = dmPartner(r.id);
  if (other) return personOf(r, other).displayname || other;
  return r.name();
}

function roomAvatar(r, label) {
  const url = r.st("m.room.avatar")?.url;
  const other = !url && !r.st("m.room.name")?.name && dmPartner(r.id);
  if (other) return avatarFor(other, label, personOf(r, other).avatar_url);
  return avatarFor(r.id, label, url);
}

// ---------- rendering: room list ----------

export function renderRoomList() {
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
      // The inviter's server: blocking it refuses its invites, to every
      // user of this node (only the node's owner may).
      const server = inviter ? inviter.slice(inviter.indexOf(":") + 1) : "";
      const block = server ? h("button", { type: "button", class: "danger small", title: "Refuse every invite from " + server }, "Block server") : null;
      const buttons = [accept, decline, block].filter(Boolean);
      const busy = (on) => { for (const b of buttons) b.disabled = on; };
      block?.addEventListener("click", async () => {
        busy(true);
        try {
          await api.blockServer(server);
          S.invites.delete(inv.id);
          renderRoomList();
          toast("Invites from " + server.slice(0, 12) + "… are refused from now on.");
        } catch (e) {
          toast(e.errcode === "M_FORBIDDEN" ? "Only this node's owner may block a server." : errText(e));
          busy(false);
        }
      });
      accept.addEventListener("click", async () => {
        accept.disabled = decline.disabled = true;
        accept.textContent = "Joining…";
        try {
          await api.join(inv.id);
          // An invite to a direct chat makes it one for this user too.
          if (myMember?.content?.is_direct && inviter) addDirect(inviter, inv.id).catch(() => {});
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
        h("strong", {}, name || (inviter ? `Chat with ${inv.state.get("m.room.member\u0000" + inviter)?.content?.displayname || inviter}` : inv.id)),
        // Only the inviter is verified (it signed the invite); the room's
        // name and topic are what the inviter says they are.
        inviter ? h("div", { class: "muted", style: "font-size:0.85rem", title: inviter }, "from " + inviter) : null,
        h("div", { class: "muted", style: "font-size:0.85rem", title: "The room's name comes from the inviter and is not verified." },
          "Name given by the inviter, not verified"),
        h("div", { class: "inv-actions" }, buttons)));
    }
    items.push(h("li", { class: "list-heading" }, "Rooms"));
  }
  const rooms = [...S.rooms.values()].sort((a, b) => b.lastTs() - a.lastTs());
  let total = 0;
  for (const r of rooms) {
    const last = r.lastMessage();
    const { notes: unread, highlights } = unreadOf(r);
    total += unread;
    const label = roomLabel(r);
    const lastText = last ? `${last.sender === S.me?.user_id ? "You" : r.displayName(last.sender)}: ${last.content?.body ?? "(deleted)"}` : "No messages yet";
    const muted = isMuted(r.id);
    // Knocks wait for someone who may invite: they are told here.
    const asking = r.can("invite") ? r.members(["knock"]).length : 0;
    const btn = h("button", {
      type: "button", class: "room-item" + (unread ? " unread" : ""), "aria-current": r.id === S.current ? "true" : "false",
      "aria-label": `${label}${unread ? `, ${unread} unread` : ""}${highlights ? `, ${highlights} mentioning you` : ""}${muted ? ", muted" : ""}${asking ? `, ${asking} asking to join` : ""}`,
      dataset: { room: r.id },
      onclick: () => go("#/room/" + encodeURIComponent(r.id)),
    },
      roomAvatar(r, label),
      h("span", { class: "room-text" },
        h("span", { class: "row1" }, h("span", { class: "rname" }, label),
          muted ? h("span", { class: "muted-mark", title: "Muted" }, "muted") : null,
          asking ? h("span", { class: "muted-mark knock-mark", title: "Open the room's settings to let them in" }, `${asking} asking to join`) : null,
          highlights ? h("span", { class: "badge mention", title: `${highlights} mentioning you` }, "@") : null,
          unread ? h("span", { class: "badge" }, unread > 99 ? "99+" : unread) : null),
        h("span", { class: "last" }, lastText)));
    items.push(h("li", {}, btn));
  }
  if (!rooms.length && !S.invites.size) items.push(h("li", { class: "muted", style: "padding:0.6rem" }, "No rooms yet."));
  list.replaceChildren(...items);
  document.title = (total ? `(${total}) ` : "") + (S.current && S.rooms.get(S.current) ? roomLabel(S.rooms.get(S.current)) + " · parley" : "parley");
}
