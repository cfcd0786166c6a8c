// Dialogs: new room, invite, room settings, leave, invite links and joining with a link.
import { api } from "./api.js";
import { qrSVG } from "./qr.js";
import { h, kids, toast, copyRow, errText, openDialog, formDialog, field, fullFmt, relTime } from "./dom.js";
import { S, openWhenReady } from "./state.js";
import { go } from "./router.js";
import { renderRoomList } from "./roomlist.js";
import { linkMaker } from "./e2ee.js";

// ---------- dialogs: rooms ----------

export function createRoomDialog() {
  const vis = h("div", { class: "radio-row", role: "radiogroup", "aria-label": "Who can join" },
    h("label", {}, h("input", { type: "radio", name: "preset", value: "private_chat", checked: true }), "Private: invite only"),
    h("label", {}, h("input", { type: "radio", name: "preset", value: "public_chat" }), "Public: anyone with the ID"));
  formDialog("New room", [field("name", "Name", { required: true, maxlength: 255, autofocus: true }), field("topic", "Topic (optional)", { maxlength: 1000 }), h("label", {}, "Who can join"), vis], "Create", async (fd, close) => {
    const body = { preset: fd.get("preset"), name: String(fd.get("name")).trim() };
    const topic = String(fd.get("topic") || "").trim();
    if (topic) body.topic = topic;
    if (body.preset === "public_chat") body.visibility = "private"; // not listed in a directory
    const res = await api.createRoom(body);
    close();
    openWhenReady(res.room_id);
  });
}

export function inviteDialog(r) {
  formDialog(`Invite to ${r.name()}`, [field("user", "User ID", { required: true, placeholder: "@name:server", pattern: "@[^:]+:.+", title: "a full user ID like @alice:5f0c…", autocapitalize: "off", spellcheck: "false", note: "Their full Matrix user ID, as shown in their parley node panel." })], "Invite", async (fd, close) => {
    await api.invite(r.id, String(fd.get("user")).trim());
    close();
    toast("Invited");
  });
}

// The room settings dialog lives in settings.js; app.js opens it by this name.
export { roomSettingsDialog as settingsDialog } from "./settings.js";

export function leaveDialog(r) {
  openDialog(`Leave ${r.name()}?`, (body, close) => {
    const err = h("p", { class: "error", role: "alert" });
    const btn = h("button", { type: "button", class: "danger", onclick: async () => {
      btn.disabled = true;
      try {
        await api.leave(r.id);
        S.rooms.delete(r.id);
        close();
        go("#/");
        renderRoomList();
      } catch (e) {
        err.textContent = errText(e);
        btn.disabled = false;
      }
    } }, "Leave");
    body.append(h("p", {}, "You will need a new invite to come back to a private room."), err,
      h("div", { class: "dlg-actions" }, h("button", { type: "button", class: "secondary", onclick: close, autofocus: true }, "Cancel"), btn));
  });
}

// ---------- invite links ----------

export function linkDialog(r) {
  openDialog("Invite with a link", (body) => {
    const out = h("div", { "aria-live": "polite" });
    const list = h("div");
    const uses = field("max_uses", "Maximum uses (optional)", { type: "number", min: 1, max: 1000000, placeholder: "unlimited" });
    const expiry = h("select", { id: "link-exp", name: "expires" },
      h("option", { value: "" }, "Never"), h("option", { value: String(3600e3) }, "1 hour"), h("option", { value: String(86400e3), selected: true }, "1 day"),
      h("option", { value: String(7 * 86400e3) }, "7 days"), h("option", { value: String(30 * 86400e3) }, "30 days"));
    const err = h("p", { class: "error", role: "alert" });
    const submit = h("button", { type: "submit" }, "Create link");
    const form = h("form", {}, h("p", { class: "muted" }, "Anyone with the link can join this room. Any member's device can honour it, so it keeps working while yours is off."),
      uses, h("label", { for: "link-exp" }, "Expires after"), expiry, err, h("div", { class: "dlg-actions" }, submit));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      err.textContent = "";
      submit.disabled = true;
      const fd = new FormData(form);
      const req = {};
      if (fd.get("max_uses")) req.max_uses = Number(fd.get("max_uses"));
      if (fd.get("expires")) req.expires_in_ms = Number(fd.get("expires"));
      try {
        const link = await api.createLink(r.id, req);
        showLink(out, link);
        out.scrollIntoView({ block: "start", behavior: "smooth" });
        out.querySelector("button")?.focus({ preventScroll: true });
        refreshLinks(r, list);
      } catch (e) {
        err.textContent = errText(e);
      } finally {
        submit.disabled = false;
      }
    });
    body.append(form, out, list);
    refreshLinks(r, list);
  });
}

function linkInfo(l) {
  const parts = [];
  parts.push(l.max_uses ? `used ${l.uses} of ${l.max_uses}` : `used ${l.uses} time${l.uses === 1 ? "" : "s"}`);
  parts.push(l.expires_ts ? (l.expires_ts > Date.now() ? `expires in ${relTime(l.expires_ts - Date.now())} (${fullFmt.format(l.expires_ts)})` : "expired") : "never expires");
  return parts.join(" · ");
}

function showLink(out, l) {
  const qrText = l.web_link || l.link;
  let qr;
  try {
    qr = qrSVG(qrText, { ecl: qrText.length > 500 ? "L" : "M", label: "QR code of the invite link" });
    qr.classList.add("big");
  } catch (e) {
    qr = h("p", { class: "error" }, "Link too long for a QR code.");
  }
  out.replaceChildren(...kids(
    h("h3", {}, "Your new link"),
    h("label", {}, "Link for the parley app"), copyRow(l.link, "invite link"),
    l.web_link ? [h("label", {}, "Web link (opens in a parley node's web app)"), copyRow(l.web_link, "web link")] : null,
    qr,
    h("p", { class: "muted", style: "text-align:center" }, linkInfo(l)),
  ));
}

async function refreshLinks(r, list) {
  try {
    const res = await api.links(r.id);
    const links = (res.links || []).filter(Boolean);
    list.replaceChildren(
      h("h3", {}, `Live links (${links.length})`),
      links.length ? h("ul", { class: "link-list" }, links.map((l) => h("li", {},
        h("span", {}, h("code", {}, l.id), h("br"), h("span", { class: "muted" }, linkInfo(l) + (l.created_by ? ` · made by ${l.created_by}` : ""))),
        h("button", { type: "button", class: "danger small", "aria-label": `Revoke link ${l.id}`, onclick: async (ev) => {
          ev.target.disabled = true;
          try {
            await api.revokeLink(r.id, l.id);
            toast("Link revoked");
          } catch (e) {
            toast(errText(e));
          }
          refreshLinks(r, list);
        } }, "Revoke")))) : h("p", { class: "muted" }, "No live links."));
  } catch (e) {
    list.replaceChildren(h("p", { class: "error" }, "Could not list links: " + errText(e)));
  }
}

export function joinLinkDialog(prefill = "") {
  openDialog("Join with a link", (body, close) => {
    const ta = h("textarea", { id: "join-link", name: "link", rows: 3, required: true, placeholder: "parley:join/… or http://127.0.0.1:8008/#/join/…", spellcheck: "false", autocapitalize: "off" });
    ta.value = prefill;
    const err = h("p", { class: "error", role: "alert" });
    const progress = h("div", { class: "progress", "aria-live": "polite", hidden: true });
    const submit = h("button", { type: "submit", autofocus: prefill ? true : null }, "Join");
    // A link made by someone the user met, and taken from their hand,
    // verifies the maker's device: the user is asked, and only "yes"
    // counts (a link pasted from a chat could come from anyone).
    const inPerson = h("fieldset", { class: "in-person", hidden: true },
      h("legend", {}),
      h("div", { class: "radio-row" },
        h("label", {}, h("input", { type: "radio", name: "in_person", value: "yes" }), "Yes, in person"),
        h("label", {}, h("input", { type: "radio", name: "in_person", value: "no", checked: true }), "No")),
      h("p", { class: "field-note" }, "Answer yes only if they showed or gave you this very link face to face: their device is then marked verified."));
    const askMaker = () => {
      const maker = linkMaker(ta.value);
      inPerson.hidden = !maker;
      inPerson.querySelector("legend").textContent = `Did you get this link in person from ${maker}?`;
    };
    ta.addEventListener("input", askMaker);
    askMaker();
    const form = h("form", {}, prefill ? h("p", {}, "You opened an invite link. Join the room?") : h("p", { class: "muted" }, "Paste an invite link someone shared with you."),
      h("label", { for: "join-link" }, "Invite link"), ta, inPerson, err, progress,
      h("div", { class: "dlg-actions" }, h("button", { type: "button", class: "secondary", onclick: close }, "Cancel"), submit));
    ta.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && !ev.shiftKey) {
        ev.preventDefault();
        form.requestSubmit();
      }
    });
    let timer;
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      err.textContent = "";
      const link = ta.value.trim();
      // Read before the fieldset is disabled: FormData skips disabled fields.
      const maker = inPerson.hidden ? "" : linkMaker(link);
      const metMaker = !!maker && new FormData(form).get("in_person") === "yes";
      submit.disabled = ta.disabled = inPerson.disabled = true;
      const t0 = Date.now();
      const tick = () => {
        const s = Math.round((Date.now() - t0) / 1000);
        progress.replaceChildren(h("span", { class: "spinner", "aria-hidden": "true" }),
          s < 4 ? "Asking the room's members to let you in…" : `Finding a device of a room member and joining… ${s} s`);
      };
      progress.hidden = false;
      tick();
      timer = setInterval(tick, 1000);
      try {
        const res = await api.joinLink(link, metMaker);
        clearInterval(timer);
        close();
        if (res.verified_server) toast(`Joined. ${maker}'s device is verified.`);
        else if (res.verify_error) toast(`Joined, but ${maker} could not be verified: ${res.verify_error}`);
        else toast("Joined");
        openWhenReady(res.room_id);
      } catch (e) {
        clearInterval(timer);
        progress.hidden = true;
        err.textContent = errText(e);
        submit.disabled = ta.disabled = inPerson.disabled = false;
        submit.textContent = "Try again";
      }
    });
    body.append(form);
    (prefill ? submit : ta).focus();
  });
}
