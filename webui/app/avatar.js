// Avatars: a person's or room's picture (an mxc:// URI read through the
// media API as a thumbnail) or, without one, a coloured initial made from
// the ID, so the same ID always gets the same colour on every device.
import { h } from "./dom.js";
import { mediaURL } from "./media.js";

// hue is a stable colour for an ID (FNV-1a over its UTF-16 code units).
function hue(id) {
  let x = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    x ^= id.charCodeAt(i);
    x = Math.imul(x, 0x01000193) >>> 0;
  }
  return x % 360;
}

// initial is the first letter or digit of the name (or of the ID after
// its sigil), upper-cased; "?" when there is none.
function initial(id, name) {
  const src = (name || "").trim() || (id || "").replace(/^[@!#+$]/, "");
  const m = src.match(/[\p{L}\p{N}]/u);
  return m ? m[0].toLocaleUpperCase() : "?";
}

// avatarFor makes an avatar element of size px (default 32): the initial
// at once, replaced by the picture when an mxc URI is given and its
// thumbnail loads. It carries no text for screen readers (the name next
// to it says who it is).
export function avatarFor(id, name, mxc, { size = 32 } = {}) {
  const el = h("span", {
    class: "avatar",
    "aria-hidden": "true",
    dataset: { for: id || "" },
    style: `--av-size:${size}px;--av-hue:${hue(id || "")}`,
  }, initial(id, name));
  if (mxc) {
    const px = size <= 48 ? 96 : 256; // sharp on high-density screens
    mediaURL(mxc, { width: px, height: px, method: "crop" }).then((url) => {
      el.replaceChildren(h("img", { src: url, alt: "" }));
      el.classList.add("has-img");
    }, () => { /* no picture to be had: the initial stays */ });
  }
  return el;
}
