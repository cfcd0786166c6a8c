// Direct chats and the public room directory: starting a direct chat
// with a user ID, the user's m.direct account data (which rooms are direct
// chats, and with whom), and browsing and joining published rooms.
import { api } from "./api.js";
import { h, toast, errText, openDialog, formDialog, field } from "./dom.js";
import { S, openWhenReady } from "./state.js";

// ---------- m.direct ----------

// direct is the user's m.direct content as last synced: user ID -> room IDs.
let direct = {};

// noteDirect is told of the user's account data events from /sync.
export function noteDirect(events) {
  for (const ev of events || []) {
    if (ev.type === "m.direct" && ev.content && typeof ev.content === "object") direct = ev.content;
  }
}

// dmPartner is the other person of a direct chat, or "" if the room is
// not one.
export function dmPartner(roomId) {
  for (const [user, rooms] of Object.entries(direct)) {
    if (Array.isArray(rooms) && rooms.includes(roomId)) return user;
  }
  return "";
}

// addDirect records a room as a direct chat with userId in m.direct, on
// top of the content the last sync gave.
export async function addDirect(userId, roomId) {
  let cur = direct;
  const list = Array.isArray(cur[userId]) ? cur[userId] : [];
  if (list.includes(roomId)) return;
  cur = { ...cur, [userId]: [...list, roomId] };
  await api.putAccountData(S.me.user_id, "m.direct", cur);
  direct = cur;
}

// ---------- starting a direct chat ----------

export function directChatDialog() {
  formDialog("Start a direct chat", [
    field("user", "User ID", { required: true, autofocus: true, placeholder: "@name:server", pattern: "@[^:]+:.+", title: "a full user ID like @alice:5f0c…", autocapitalize: "off", spellcheck: "false", note: "Their full Matrix user ID, as their parley node panel shows it." }),
  ], "Start chat", async (fd, close) => {
    const user = String(fd.get("user")).trim();
    if (user === S.me.user_id) throw new Error("That is you.");
    // A direct chat with them that both are still in opens instead.
    for (const id of Array.isArray(direct[user]) ? direct[user] : []) {
      const r = S.rooms.get(id);
      if (r && ["join", "invite"].includes(r.st("m.room.member", user)?.membership)) {
        close();
        openWhenReady(id);
        return;
      }
    }
    const res = await api.createRoom({ preset: "trusted_private_chat", is_direct: true, invite: [user] });
    try {
      await addDirect(user, res.room_id);
    } catch (e) {
      toast("The chat is made, but could not be marked as direct: " + errText(e));
    }
    close();
    openWhenReady(res.room_id);
  }, { note: "A private room with one person, which they are invited to." });
}

// ---------- the public room directory ----------

export function directoryDialog() {
  openDialog("Public rooms", (body) => {
    const term = h("input", { id: "dir-term", name: "term", type: "search", placeholder: "Search by name or topic", "aria-label": "Search public rooms", maxlength: 200 });
    const server = h("input", { id: "dir-server", name: "server", placeholder: "all servers this node finds", autocapitalize: "off", spellcheck: "false", maxlength: 255 });
    const status = h("p", { class: "muted", role: "status" });
    const list = h("ul", { class: "dir-list" });
    const more = h("button", { type: "button", class: "secondary small", hidden: true }, "More");
    let next = "", asked = null;
    const form = h("form", { class: "dir-form" },
      h("label", { for: "dir-term" }, "Search"), term,
      h("label", { for: "dir-server" }, "Server (optional)"), server,
      h("p", { class: "field-note" }, "Leave empty to list this node's rooms and those other nodes publish; give a server name to ask that node alone."),
      h("div", { class: "dlg-actions" }, h("button", { type: "submit" }, "Search")));
    const load = async (append) => {
      const srv = server.value.trim();
      const req = { limit: 20 };
      if (term.value.trim()) req.filter = { generic_search_term: term.value.trim() };
      if (append && next) req.since = next;
      const key = {};
      asked = key;
      status.textContent = "Looking…";
      more.hidden = true;
      try {
        const res = await api.publicRooms(srv, req);
        if (asked !== key) return; // a newer search is on its way
        if (!append) list.replaceChildren();
        list.append(...(res.chunk || []).map((e) => entry(e, srv)));
        next = res.next_batch || "";
        more.hidden = !next;
        const n = list.children.length, total = Math.max(n, res.total_room_count_estimate ?? n);
        const rooms = (k) => `${k} room${k === 1 ? "" : "s"}`;
        status.textContent = !n ? "No public rooms found." : n === total ? rooms(n) : `${n} of about ${rooms(total)}`;
      } catch (e) {
        if (asked === key) status.textContent = errText(e);
      }
    };
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      load(false);
    });
    more.addEventListener("click", () => load(true));
    body.append(form, status, list, more);
    load(false);
  });
}

function entry(e, server) {
  const joined = S.rooms.has(e.room_id);
  const btn = h("button", { type: "button", class: joined ? "secondary small" : "small" }, joined ? "Open" : e.join_rule === "knock" ? "Ask to join" : "Join");
  btn.addEventListener("click", async () => {
    if (S.rooms.has(e.room_id)) {
      btn.closest("dialog")?.close();
      openWhenReady(e.room_id);
      return;
    }
    btn.disabled = true;
    btn.textContent = e.join_rule === "knock" ? "Asking…" : "Joining…";
    try {
      if (e.join_rule === "knock") {
        await api.knock(e.room_id, server ? [server] : []);
        toast("Asked to join: a member will let you in.");
        btn.textContent = "Asked";
        return;
      }
      await api.joinVia(e.room_id, server ? [server] : []);
      btn.closest("dialog")?.close();
      openWhenReady(e.room_id);
    } catch (err) {
      toast(errText(err));
      btn.disabled = false;
      btn.textContent = e.join_rule === "knock" ? "Ask to join" : "Join";
    }
  });
  const name = e.name || e.canonical_alias || e.room_id;
  return h("li", { class: "dir-entry", dataset: { room: e.room_id } },
    h("div", { class: "dir-text" },
      h("strong", { class: "dir-name" }, name),
      e.topic ? h("span", { class: "dir-topic" }, e.topic) : null,
      h("span", { class: "muted dir-meta" }, `${e.num_joined_members ?? 0} member${e.num_joined_members === 1 ? "" : "s"}` + (e.canonical_alias && e.canonical_alias !== name ? ` · ${e.canonical_alias}` : ""))),
    btn);
}
