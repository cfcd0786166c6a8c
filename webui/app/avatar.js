// Avatars: a member's picture from their m.room.member avatar_url (a
// thumbnail through the authenticated media API), or a coloured initial
// made from their user ID when they have none or it cannot be had.
import { h } from "./dom.js";
import { mediaURL } from "./media.js";

// hue picks a stable colour for a user ID (FNV-1a over its characters).
function hue(id) {
  let x = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) x = Math.imul(x ^ id.charCodeAt(i), 0x01000193) >>> 0;
  return x % 360;
}

// initial is the first letter of a name, skipping the sigil of a user ID.
export function initial(name) {
  const s = String(name || "?").replace(/^[@!#]/, "");
  return (Array.from(s)[0] || "?").toUpperCase();
}

// avatarEl is an avatar for userId in room r; size is "small" or "".
export function avatarEl(r, userId, size = "") {
  const name = r.displayName(userId);
  const el = h("span", { class: "avatar" + (size ? " " + size : ""), "aria-hidden": "true", style: `--av-hue:${hue(userId)}` }, initial(name));
  const url = r.avatarURL(userId);
  if (url) {
    mediaURL(url, { width: 64, height: 64, method: "crop" }).then((src) => {
      el.replaceChildren(h("img", { src, alt: "" }));
      el.classList.add("has-img");
    }, () => { /* keep the initial */ });
  }
  return el;
}
