// The sidebar's list of rooms and invites.
import { api } from "./api.js";
import { $, h, toast, errText } from "./dom.js";
import { S, openWhenReady } from "./state.js";
import { go } from "./router.js";

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
