// The members panel and a member's dialog (roles, removing, banning).
import { api } from "./api.js";
import { $, h, errText, openDialog } from "./dom.js";
import { S, on } from "./state.js";
import { refreshStatus, pollStatusFast, serverOf, serverPath, pathText, shortPeer } from "./node.js";
import { avatarEl } from "./message.js";
import { ensureE2EE, refreshE2EE, memberE2EE, verifiedMark, safetyBlock, whenE2EEChanges } from "./e2ee.js";

// ---------- members ----------

function levelName(pl) {
  if (pl === Infinity) return "Owner";
  if (pl >= 100) return "Admin";
  if (pl >= 50) return "Moderator";
  return pl ? `Level ${pl}` : "";
}

// The panel renders again when a room's encryption info arrives.
whenE2EEChanges(() => renderMembers());

export function renderMembers() {
  const r = S.current && S.rooms.get(S.current);
  const panel = $("members");
  if (!r) return panel.replaceChildren();
  const cmp = (x, y) => (x < y ? -1 : x > y ? 1 : 0);
  const ms = r.members(["join", "invite"]).sort((a, b) => cmp(r.levelOf(b.state_key), r.levelOf(a.state_key)) || (a.content.displayname || a.state_key).localeCompare(b.content.displayname || b.state_key));
  const joined = ms.filter((m) => m.content.membership === "join");
  const invited = ms.filter((m) => m.content.membership === "invite");
  ensureE2EE(r);
  const item = (m) => {
    const pl = r.levelOf(m.state_key);
    const v = memberE2EE(r, m.state_key)?.verified;
    return h("li", {}, h("button", { type: "button", class: "member", onclick: () => memberDialog(r, m.state_key) },
      avatarEl(r, m.state_key, "small"),
      h("span", { style: "min-width:0;flex:1" }, h("span", { class: "mname" }, (m.content.displayname || m.state_key) + (m.state_key === S.me.user_id ? " (you)" : "")), h("span", { class: "mid" }, m.state_key),
        h("span", { class: "mpath", dataset: { server: serverOf(m.state_key), membership: m.content.membership }, hidden: true })),
      h("span", { class: "tags" }, v ? verifiedMark(v) : null, levelName(pl) ? h("span", { class: "pl" + (pl >= 100 ? " admin" : "") }, levelName(pl)) : null)));
  };
  panel.replaceChildren(...[
    h("h2", {}, `Members (${joined.length})`, h("button", { type: "button", class: "ghost small", "aria-label": "Close members", onclick: toggleMembers }, "✕")),
    h("ul", { class: "link-list", style: "margin:0" }, joined.map(item)),
    invited.length ? h("h2", {}, `Invited (${invited.length})`) : null,
    invited.length ? h("ul", { class: "link-list", style: "margin:0" }, invited.map(item)) : null,
  ].filter(Boolean));
  paintPaths();
}

const asked = new Set(); // "server membership" whose absence from the status made us ask again
let askTimer = null;

// paintPaths writes beside each member of another server how this node
// reaches it ("direct · 23 ms", "via Carol · 80 ms", "offline"), from the
// last status, in place (focus and scroll stay).
function paintPaths() {
  const r = S.current && S.rooms.get(S.current);
  if (!r) return;
  const relayName = (p) => {
    const m = p.via_server && r.members(["join"]).find((x) => serverOf(x.state_key) === p.via_server);
    return m ? m.content.displayname || m.state_key : shortPeer(p.via);
  };
  let unasked = false;
  for (const el of $("members").querySelectorAll(".mpath")) {
    const p = serverPath(el.dataset.server);
    const key = el.dataset.server + " " + el.dataset.membership;
    if (!p && Array.isArray(S.status?.members) && el.dataset.server !== S.status.server_name && !asked.has(key)) {
      asked.add(key);
      unasked = true;
    }
    const text = p ? pathText(p, relayName) : "";
    if (el.textContent !== text) el.textContent = text;
    el.className = "mpath" + (p ? " " + p.path : "");
    el.title = p?.via ? "Relay: " + p.via : "";
    el.hidden = !text;
  }
  // A server the status did not name yet (a member who was just invited
  // or joined) is asked about once a moment later, not at the next poll.
  if (unasked && !askTimer) askTimer = setTimeout(() => { askTimer = null; refreshStatus(); }, 1000);
}
on("status", paintPaths);

// showMembersPanel shows or hides the panel as the user chose, for the open room.
export function showMembersPanel() {
  const r = S.current && S.rooms.get(S.current);
  const hide = !r || !S.membersOpen;
  if ($("members").hidden !== hide) $("members").hidden = hide;
  pollStatusFast(!hide);
  if ($("members-btn").getAttribute("aria-expanded") !== String(!hide)) $("members-btn").setAttribute("aria-expanded", String(!hide));
}

export function toggleMembers() {
  S.membersOpen = !S.membersOpen;
  showMembersPanel();
  renderMembers();
  if (S.membersOpen) refreshStatus();
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
    // The safety number, once the node has said it (the panel asks).
    const e2 = memberE2EE(r, userId);
    let block = e2 && !e2.this_device ? safetyBlock(r, e2, again) : null;
    async function again() {
      const m2 = (await refreshE2EE(r))?.members.find((x) => x.user_id === userId);
      if (!m2) return;
      const fresh = safetyBlock(r, m2, again);
      block.replaceWith(fresh);
      block = fresh;
      fresh.querySelector("button")?.focus();
    }
    const safety = block ? [h("h3", {}, "Safety number"), block] : [];
    body.append(
      h("dl", { class: "kv" }, h("dt", {}, "User ID"), h("dd", {}, h("code", {}, userId)), h("dt", {}, "Power level"), h("dd", {}, theirPL === Infinity ? "Owner (room creator)" : `${theirPL}${levelName(theirPL) ? " (" + levelName(theirPL) + ")" : ""}`), h("dt", {}, "Membership"), h("dd", {}, m.membership || "—")),
      actions.length ? h("div", { class: "dlg-actions", style: "justify-content:flex-start" }, actions) : h("p", { class: "muted" }, userId === me ? "This is you." : "You cannot change this member's role or remove them here."),
      err,
      ...safety,
      h("div", { class: "dlg-actions" }, h("button", { type: "button", class: "secondary", onclick: close, autofocus: true }, "Close")),
    );
  });
}
