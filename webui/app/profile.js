// The user's own profile and app settings: display name, avatar (a
// picture uploaded through the media API, or the generated initial), and
// the notifications switch. The node sends a profile change into every
// room the user is in, so other members see it.
import { api } from "./api.js";
import { $, h, errText, toast, copyRow, openDialog } from "./dom.js";
import { S } from "./state.js";
import { avatarFor } from "./avatar.js";
import { upload, mediaConfig } from "./media.js";
import { notifySupported, notifyEnabled, setNotify } from "./notify.js";

// mine is the user's profile as the node last said: {displayname, avatar_url}.
let mine = {};

export const myProfile = () => mine;

// loadMyProfile reads the user's profile and shows it in the sidebar.
let loading = null;
export function loadMyProfile() {
  if (!S.me) return Promise.resolve();
  loading ??= api.profile(S.me.user_id).then((p) => { mine = p || {}; }, () => { mine = {}; }).finally(() => {
    loading = null;
    renderMe();
  });
  return loading;
}

// noteMyMember keeps the sidebar in step when the user's own member event
// changes (a change made on another device or app).
export function noteMyMember(content) {
  if (!content || content.membership !== "join") return;
  if (content.displayname === mine.displayname && content.avatar_url === mine.avatar_url) return;
  loadMyProfile();
}

export function renderMe() {
  const btn = $("profile-btn");
  if (!btn || !S.me) return;
  btn.replaceChildren(avatarFor(S.me.user_id, mine.displayname, mine.avatar_url, { size: 28 }),
    h("span", { class: "profile-name" }, mine.displayname || S.me.user_id.slice(1, S.me.user_id.indexOf(":"))));
  btn.title = "Your profile and settings";
}

const MAX_AVATAR = 10 * 1024 * 1024; // a profile picture needs no more

export function profileDialog() {
  openDialog("Profile and settings", (body, close) => {
    const err = h("p", { class: "error", role: "alert" });
    // ---- avatar ----
    const pic = h("div", { class: "profile-pic" });
    const showPic = () => pic.replaceChildren(avatarFor(S.me.user_id, mine.displayname, mine.avatar_url, { size: 72 }));
    showPic();
    const file = h("input", { type: "file", accept: "image/png,image/jpeg,image/gif,image/webp", id: "avatar-file", class: "sr-only" });
    const progress = h("progress", { max: 1, value: 0, hidden: true, "aria-label": "Upload progress" });
    const cancel = h("button", { type: "button", class: "ghost small", hidden: true }, "Cancel");
    const remove = h("button", { type: "button", class: "danger small", hidden: !mine.avatar_url }, "Remove picture");
    const choose = h("button", { type: "button", class: "secondary small", onclick: () => file.click() }, "Upload a picture");
    let aborter = null;
    cancel.addEventListener("click", () => aborter?.abort());
    file.addEventListener("change", async () => {
      const f = file.files[0];
      file.value = "";
      if (!f) return;
      err.textContent = "";
      const limit = Math.min(MAX_AVATAR, (await mediaConfig())["m.upload.size"] || MAX_AVATAR);
      if (!f.type.startsWith("image/")) return void (err.textContent = "Choose a picture (PNG, JPEG, GIF or WebP).");
      if (f.size > limit) return void (err.textContent = `The picture is ${(f.size / 1048576).toFixed(1)} MiB; at most ${(limit / 1048576).toFixed(0)} MiB.`);
      aborter = new AbortController();
      choose.disabled = true;
      progress.hidden = cancel.hidden = false;
      progress.value = 0;
      try {
        const mxc = await upload(f, { signal: aborter.signal, onProgress: (sent, total) => { progress.value = total ? sent / total : 0; } });
        await api.setAvatarURL(S.me.user_id, mxc);
        mine = { ...mine, avatar_url: mxc };
        showPic();
        renderMe();
        remove.hidden = false;
        toast("Picture updated");
      } catch (e) {
        err.textContent = e.name === "AbortError" ? "Upload cancelled." : errText(e);
      } finally {
        choose.disabled = false;
        progress.hidden = cancel.hidden = true;
        aborter = null;
      }
    });
    remove.addEventListener("click", async () => {
      remove.disabled = true;
      try {
        await api.setAvatarURL(S.me.user_id, "");
        mine = { ...mine, avatar_url: "" };
        showPic();
        renderMe();
        remove.hidden = true;
      } catch (e) {
        err.textContent = errText(e);
      } finally {
        remove.disabled = false;
      }
    });
    // ---- display name ----
    const nameInput = h("input", { id: "profile-name", name: "displayname", autofocus: true, maxlength: 255, autocomplete: "nickname", placeholder: S.me.user_id.slice(1, S.me.user_id.indexOf(":")) });
    nameInput.value = mine.displayname || "";
    const save = h("button", { type: "submit", class: "small" }, "Save name");
    const nameForm = h("form", { class: "profile-name-form" }, h("label", { for: "profile-name" }, "Display name"),
      h("div", { class: "copy-row" }, nameInput, save),
      h("p", { class: "field-note" }, "What others see instead of your user ID, in every room you are in."));
    nameForm.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      err.textContent = "";
      const name = nameInput.value.trim();
      if (name === (mine.displayname || "")) return;
      save.disabled = true;
      try {
        await api.setDisplayName(S.me.user_id, name);
        mine = { ...mine, displayname: name };
        showPic();
        renderMe();
        toast("Name saved");
      } catch (e) {
        err.textContent = errText(e);
      } finally {
        save.disabled = false;
      }
    });
    // ---- notifications ----
    const notifyBox = h("input", { type: "checkbox", id: "notify-on", checked: notifyEnabled(), disabled: !notifySupported() });
    const notifyNote = h("p", { class: "field-note", role: "status" }, !notifySupported() ? "This browser cannot show notifications."
      : Notification.permission === "denied" ? "The browser blocks notifications for this page: allow them in the site's settings first." : "Only for others' messages, and not for muted rooms.");
    notifyBox.addEventListener("change", async () => {
      notifyBox.disabled = true;
      try {
        notifyBox.checked = await setNotify(notifyBox.checked);
      } catch (e) {
        notifyBox.checked = false;
        notifyNote.textContent = errText(e);
      } finally {
        notifyBox.disabled = false;
      }
    });
    body.append(
      h("div", { class: "profile-top" }, pic, h("div", { class: "profile-pic-actions" }, h("label", { for: "avatar-file", class: "sr-only" }, "Picture file"), file, choose, remove, progress, cancel)),
      nameForm,
      h("label", {}, "Your user ID"), copyRow(S.me.user_id, "user ID"),
      h("h3", {}, "Notifications"),
      h("label", { class: "check-row", for: "notify-on" }, notifyBox, "Notify me of new messages while this tab is in the background"),
      notifyNote,
      err,
      h("div", { class: "dlg-actions" }, h("button", { type: "button", class: "secondary", onclick: close }, "Close")),
    );
  });
}
