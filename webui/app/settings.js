// Room settings: name and topic, the room's picture, who may join, who
// may read the history, whether the room is listed in the public
// directory, muting its notifications, those asking to join (knocking)
// with buttons to let them in or refuse them, and the banned members with
// a button to let each back. Each control shows only if the user's power
// level allows the change; otherwise the setting is shown as text.
import { api } from "./api.js";
import { h, kids, errText, toast, openDialog } from "./dom.js";
import { S } from "./state.js";
import { avatarFor } from "./avatar.js";
import { upload, mediaConfig } from "./media.js";
import { isMuted, setMuted } from "./notify.js";
import { renderRoomList } from "./roomlist.js";

const joinRules = [
  ["invite", "Invite only"],
  ["knock", "Anyone may ask to join"],
  ["public", "Anyone with the room ID or link"],
];
const historyRules = [
  ["shared", "Members: all of it"],
  ["invited", "Members: from when they were invited"],
  ["joined", "Members: from when they joined"],
  ["world_readable", "Anyone, members or not"],
];
const label = (list, v) => list.find(([k]) => k === v)?.[1] || v || "—";

// select makes a <select> of the choices with the current one picked.
function select(id, list, cur) {
  const s = h("select", { id, name: id }, list.map(([v, text]) => h("option", { value: v, selected: v === cur }, text)));
  s.value = cur;
  return s;
}

const MAX_ROOM_AVATAR = 10 * 1024 * 1024;

export function roomSettingsDialog(r) {
  const me = S.me.user_id;
  const can = {
    name: r.can("m.room.name"), topic: r.can("m.room.topic"), avatar: r.can("m.room.avatar"),
    join: r.can("m.room.join_rules"), history: r.can("m.room.history_visibility"),
    // The node lets a member publish the room if they may set its
    // canonical alias (the spec leaves the rule to servers).
    publish: r.can("m.room.canonical_alias"), ban: r.can("ban"),
  };
  const oldName = r.st("m.room.name")?.name || "", oldTopic = r.st("m.room.topic")?.topic || "";
  const oldJoin = r.st("m.room.join_rules")?.join_rule || "invite";
  const oldHistory = r.st("m.room.history_visibility")?.history_visibility || "shared";
  const oldMuted = isMuted(r.id);
  openDialog("Room settings", (body, close) => {
    const err = h("p", { class: "error", role: "alert" });
    const row = (labelText, ctl, note) => [h("label", { for: ctl.id }, labelText), ctl, note ? h("p", { class: "field-note" }, note) : null];
    const fixed = (labelText, value) => [h("dt", {}, labelText), h("dd", {}, value)];
    const readOnly = [];

    // ---- picture ----
    const pic = h("div", { class: "profile-pic" });
    const showPic = () => pic.replaceChildren(avatarFor(r.id, r.name(), r.st("m.room.avatar")?.url, { size: 56 }));
    showPic();
    const picFile = h("input", { type: "file", id: "room-avatar-file", accept: "image/png,image/jpeg,image/gif,image/webp", class: "sr-only" });
    const picBtn = h("button", { type: "button", class: "secondary small", onclick: () => picFile.click(), hidden: !can.avatar }, "Change picture");
    const picProgress = h("progress", { max: 1, value: 0, hidden: true, "aria-label": "Upload progress" });
    picFile.addEventListener("change", async () => {
      const f = picFile.files[0];
      picFile.value = "";
      if (!f) return;
      err.textContent = "";
      const limit = Math.min(MAX_ROOM_AVATAR, (await mediaConfig())["m.upload.size"] || MAX_ROOM_AVATAR);
      if (!f.type.startsWith("image/")) return void (err.textContent = "Choose a picture (PNG, JPEG, GIF or WebP).");
      if (f.size > limit) return void (err.textContent = `The picture is ${(f.size / 1048576).toFixed(1)} MiB; at most ${(limit / 1048576).toFixed(0)} MiB.`);
      picBtn.disabled = true;
      picProgress.hidden = false;
      try {
        const mxc = await upload(f, { onProgress: (sent, total) => { picProgress.value = total ? sent / total : 0; } });
        await api.putState(r.id, "m.room.avatar", "", { url: mxc, info: { mimetype: f.type, size: f.size } });
        pic.replaceChildren(avatarFor(r.id, r.name(), mxc, { size: 56 }));
        toast("Room picture updated");
      } catch (e) {
        err.textContent = errText(e);
      } finally {
        picBtn.disabled = false;
        picProgress.hidden = true;
      }
    });

    // ---- the form ----
    const fields = [];
    const name = h("input", { id: "rs-name", name: "name", maxlength: 255, value: oldName });
    name.value = oldName;
    const topic = h("textarea", { id: "rs-topic", name: "topic", rows: 2, maxlength: 1000 });
    topic.value = oldTopic;
    if (can.name) fields.push(row("Name", name));
    else readOnly.push(fixed("Name", r.name()));
    if (can.topic) fields.push(row("Topic", topic));
    else readOnly.push(fixed("Topic", oldTopic || "—"));
    const join = select("rs-join", joinRules, oldJoin);
    if (can.join) fields.push(row("Who can join", join));
    else readOnly.push(fixed("Who can join", label(joinRules, oldJoin)));
    const history = select("rs-history", historyRules, oldHistory);
    if (can.history) fields.push(row("Who can read the history", history, "A change applies to messages from now on."));
    else readOnly.push(fixed("History readable by", label(historyRules, oldHistory)));
    const publish = h("input", { type: "checkbox", id: "rs-publish", name: "publish", disabled: true });
    const publishNote = h("p", { class: "field-note" }, "Checking…");
    let oldPublished = null;
    if (can.publish) {
      fields.push(h("label", { class: "check-row", for: "rs-publish" }, publish, "List in the public room directory"), publishNote);
      const explain = () => {
        const open = join.value !== "invite";
        publishNote.textContent = open ? "Anyone on the network can find this room and join it (or ask to)." : "Only a room anyone may join or ask to join can be listed.";
        publish.disabled = oldPublished === null || !open;
        if (!open) publish.checked = false;
      };
      join.addEventListener("change", explain);
      api.roomVisibility(r.id).then((v) => {
        oldPublished = v.visibility === "public";
        publish.checked = oldPublished;
        explain();
      }, (e) => { publishNote.textContent = "Could not read the directory listing: " + errText(e); });
    }
    const mute = h("input", { type: "checkbox", id: "rs-mute", name: "mute", checked: oldMuted });
    fields.push(h("label", { class: "check-row", for: "rs-mute" }, mute, "Mute: no notifications or unread counts for this room"));

    const submit = h("button", { type: "submit" }, "Save");
    const form = h("form", { class: "room-settings" }, kids(fields), err,
      h("div", { class: "dlg-actions" }, h("button", { type: "button", class: "secondary", onclick: close }, "Cancel"), submit));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      err.textContent = "";
      submit.disabled = true;
      try {
        const n = name.value.trim(), t = topic.value.trim();
        if (can.name && n !== oldName) await api.putState(r.id, "m.room.name", "", { name: n });
        if (can.topic && t !== oldTopic) await api.putState(r.id, "m.room.topic", "", { topic: t });
        // Out of the directory before the room closes; into it after it opens.
        if (can.publish && oldPublished && !publish.checked) await api.setRoomVisibility(r.id, "private");
        if (can.join && join.value !== oldJoin) await api.putState(r.id, "m.room.join_rules", "", { join_rule: join.value });
        if (can.history && history.value !== oldHistory) await api.putState(r.id, "m.room.history_visibility", "", { history_visibility: history.value });
        if (can.publish && oldPublished === false && publish.checked) await api.setRoomVisibility(r.id, "public");
        if (mute.checked !== oldMuted) {
          await setMuted(r.id, mute.checked);
          renderRoomList();
        }
        close();
        toast("Settings saved");
      } catch (e) {
        err.textContent = errText(e);
      } finally {
        submit.disabled = false;
      }
    });

    // ---- banned members, and those asking to join ----
    const banned = h("div", { class: "banned" });
    const knocks = h("div", { class: "knocks" });
    const act = (label, cls, aria, f) => h("button", { type: "button", class: cls, "aria-label": aria, onclick: async (ev) => {
      ev.target.disabled = true;
      try {
        await f();
        listMembers();
      } catch (e) {
        err.textContent = errText(e);
        ev.target.disabled = false;
      }
    } }, label);
    const person = (m, actions) => {
      const who = m.content?.displayname || m.unsigned?.prev_content?.displayname || m.state_key;
      return h("li", { dataset: { user: m.state_key } },
        h("span", {}, h("strong", {}, who), who !== m.state_key ? h("span", { class: "muted" }, " " + m.state_key) : null,
          m.content?.reason ? h("span", { class: "muted" }, h("br"), (m.content.membership === "knock" ? "Says: " : "Reason: ") + m.content.reason) : null),
        h("span", { class: "person-actions" }, actions(who)));
    };
    const listMembers = async () => {
      try {
        const res = await api.members(r.id);
        for (const ev of res.chunk || []) r.applyState(ev);
      } catch {
        /* the room state we hold will do */
      }
      const myPL = r.levelOf(me);
      const outranked = (m) => r.levelOf(m.state_key) < myPL;
      const bans = r.members(["ban"]), asking = r.members(["knock"]);
      banned.replaceChildren(...(bans.length ? [h("h3", {}, `Banned (${bans.length})`), h("ul", { class: "link-list" }, bans.map((m) => person(m, (who) =>
        can.ban && outranked(m) ? act("Unban", "secondary small", `Unban ${who}`, () => api.unban(r.id, m.state_key)) : null)))] : []));
      knocks.replaceChildren(...(asking.length ? [h("h3", {}, `Asking to join (${asking.length})`), h("ul", { class: "link-list" }, asking.map((m) => person(m, (who) => [
        r.can("invite") ? act("Let in", "small", `Let ${who} in`, () => api.invite(r.id, m.state_key)) : null,
        r.can("kick") && outranked(m) ? act("Refuse", "danger small", `Refuse ${who}`, () => api.kick(r.id, m.state_key)) : null,
      ])))] : []));
    };
    listMembers();

    body.append(...kids(
      h("div", { class: "profile-top" }, pic, h("div", { class: "profile-pic-actions" }, h("label", { for: "room-avatar-file", class: "sr-only" }, "Room picture file"), picFile, picBtn, picProgress)),
      readOnly.length ? h("dl", { class: "kv" }, kids(readOnly)) : null,
      knocks,
      form,
      banned,
      h("p", { class: "field-note" }, "Room ID: ", h("code", {}, r.id)),
      Object.values(can).some(Boolean) ? null : h("p", { class: "muted" }, "Your power level allows no changes here."),
    ));
    // The dialog focuses the first field: the form's, not the hidden file input.
    (form.querySelector("input:not([type=checkbox]), textarea, select") || submit).setAttribute("autofocus", "");
  });
}
