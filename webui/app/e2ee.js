// End-to-end encryption as the user sees it: the lock in the room
// header, the dialog that lists each member's safety number with its QR
// code, marking a member's device verified, and reading an invite link's
// maker for the join dialog.
import { api } from "./api.js";
import { qrSVG } from "./qr.js";
import { h, kids, errText, openDialog, fullFmt, toast } from "./dom.js";
import { S } from "./state.js";

// ---------- what the node says of a room ----------

// info caches GET …/e2ee per room, with the member list it was asked for,
// so the members panel asks again only when someone joins or leaves.
const info = new Map(); // roomId -> {key, data, pending}

// changed is told when a room's info arrives (the members panel renders
// again); the panel sets it, so this module does not import the panel.
let changed = () => {};
export function whenE2EEChanges(fn) {
  changed = fn;
}

const membersKey = (r) => r.members(["join", "invite"]).map((m) => m.state_key).sort().join("\n");

// e2eeOf is what the node last said of a room's members, or null.
export function e2eeOf(r) {
  return info.get(r.id)?.data || null;
}

// memberE2EE is one member's entry (safety number, verified), or null.
export function memberE2EE(r, userId) {
  return e2eeOf(r)?.members?.find((m) => m.user_id === userId) || null;
}

// ensureE2EE fetches a room's encryption info if its members changed
// since the last fetch; the members panel renders again when it arrives.
export function ensureE2EE(r) {
  const key = membersKey(r);
  const cur = info.get(r.id);
  if (cur && (cur.key === key || cur.pending)) return;
  refreshE2EE(r, key);
}

// refreshE2EE asks the node now and returns what it said (null on error).
export async function refreshE2EE(r, key = membersKey(r)) {
  const entry = { key, data: info.get(r.id)?.data || null, pending: true };
  info.set(r.id, entry);
  try {
    entry.data = await api.roomE2EE(r.id);
    entry.error = "";
  } catch (e) {
    // Not asked again until the members change (or the dialog opens):
    // the panel renders after every answer, and must not loop.
    entry.error = errText(e);
  } finally {
    entry.pending = false;
  }
  if (S.current === r.id) changed();
  return entry.error ? null : entry.data;
}

// ---------- safety numbers ----------

export const serverOf = (userId) => userId.slice(userId.indexOf(":") + 1);

// verifyText is the content of a pair's QR code: both server names, sorted,
// so both devices show the same code.
function verifyText(a, b) {
  const [x, y] = [a, b].sort();
  return `parley:verify/1/${x}/${y}`;
}

const viaText = {
  qr: "scanned QR code",
  manual: "compared safety number",
  link: "invite link taken in person",
};

export function verifiedText(v) {
  return `Verified (${viaText[v.via] || v.via}), ${fullFmt.format(v.ts)}`;
}

// verifiedMark is the small mark a verified member carries in lists.
export function verifiedMark(v) {
  return h("span", { class: "verified", title: verifiedText(v) }, h("span", { "aria-hidden": "true" }, "✓ "), "Verified");
}

// safetyBlock shows one member's safety number (12 groups of 5), its QR
// code, and the button that marks their device verified or not.
export function safetyBlock(r, m, onChange) {
  const wrap = h("div", { class: "safety", dataset: { user: m.user_id } });
  if (m.this_device) {
    wrap.append(h("p", { class: "muted" }, "On this device: there is nothing to compare."));
    return wrap;
  }
  const groups = m.safety_number.split(" ");
  const number = h("p", { class: "safety-number" },
    groups.flatMap((g, i) => (i ? [" ", h("span", {}, g)] : [h("span", {}, g)])));
  let qr;
  try {
    qr = qrSVG(verifyText(serverOf(S.me.user_id), m.server), { ecl: "M", label: `QR code to compare with ${m.user_id}` });
  } catch (e) {
    qr = h("p", { class: "error" }, "Cannot draw the QR code: " + e.message);
  }
  const status = h("p", { class: m.verified ? "ok" : "muted", role: "status" }, m.verified ? verifiedText(m.verified) : "Not verified yet.");
  const err = h("p", { class: "error", role: "alert" });
  const busy = (f) => async (ev) => {
    ev.target.disabled = true;
    err.textContent = "";
    try {
      await f();
      onChange?.();
    } catch (e) {
      err.textContent = errText(e);
    } finally {
      ev.target.disabled = false;
    }
  };
  let actions;
  if (m.verified) {
    actions = h("div", { class: "dlg-actions", style: "justify-content:flex-start" },
      h("button", { type: "button", class: "secondary small", onclick: busy(async () => {
        await api.unverify(r.id, m.server);
        toast("No longer verified");
      }) }, "Unverify"));
  } else {
    const id = "via-" + Math.random().toString(36).slice(2, 7);
    const how = h("select", { id, class: "via" },
      h("option", { value: "manual" }, "We compared the safety number"),
      h("option", { value: "qr" }, "One of us scanned the other's code"));
    actions = h("div", { class: "verify-row" },
      h("label", { for: id, class: "sr-only" }, "How you checked"), how,
      h("button", { type: "button", class: "small", onclick: busy(async () => {
        await api.verify(r.id, m.server, how.value);
        toast("Verified");
      }) }, "Mark as verified"));
  }
  wrap.append(
    h("p", { class: "muted" }, `Compare this number with ${r.displayName(m.user_id)}, in person or on a call you trust: their device shows the same one for you.`),
    number, qr, status, actions, err);
  return wrap;
}

// ---------- the lock's dialog ----------

export function e2eeDialog(r) {
  openDialog("End-to-end encrypted", (body, close) => {
    const list = h("div", { class: "e2ee-members", "aria-live": "polite" }, h("p", { class: "muted" }, "Loading members…"));
    const open = new Set(); // members whose details are open, kept across reloads
    const render = (d, focusUser) => {
      list.replaceChildren(...kids(
        h("dl", { class: "kv" }, h("dt", {}, "Messages"), h("dd", {}, d.algorithm === "m.megolm.v1.aes-sha2" ? "Megolm (m.megolm.v1.aes-sha2)" : d.algorithm),
          h("dt", {}, "Key exchange"), h("dd", {}, d.kem)),
        h("h3", {}, `Members (${d.members.length})`),
        d.members.map((m) => {
          const name = r.displayName(m.user_id);
          const det = h("details", { class: "e2ee-member", dataset: { user: m.user_id }, open: open.has(m.user_id) },
            h("summary", {}, h("span", { class: "mname" }, name + (m.user_id === S.me.user_id ? " (you)" : "")),
              m.this_device ? h("span", { class: "pl" }, "this device") : m.verified ? verifiedMark(m.verified) : h("span", { class: "pl" }, "not verified")),
            h("p", { class: "mid" }, h("code", {}, m.user_id)));
          det.addEventListener("toggle", () => (det.open ? open.add(m.user_id) : open.delete(m.user_id)));
          det.append(safetyBlock(r, m, () => reload(m.user_id)));
          return det;
        })));
      if (focusUser) [...list.querySelectorAll("details")].find((d) => d.dataset.user === focusUser)?.querySelector(".safety button")?.focus();
    };
    const reload = async (focusUser) => {
      const d = await refreshE2EE(r);
      if (d) render(d, focusUser);
      else list.replaceChildren(h("p", { class: "error", role: "alert" }, "Could not load the members: " + (info.get(r.id)?.error || "no answer")));
    };
    body.append(
      h("p", {}, "Messages, names and topics in this room are encrypted on the sender's device and can be read only on the devices of its members."),
      h("p", { class: "muted" }, "Check who you talk to: compare each member's safety number with them in person, or let them scan the code."),
      list,
      h("div", { class: "dlg-actions" }, h("button", { type: "button", class: "secondary", onclick: close, autofocus: true }, "Close")));
    const cached = e2eeOf(r);
    if (cached) render(cached);
    reload();
  });
}

// ---------- invite links ----------

// linkMaker reads the maker's user ID out of an invite link (the node
// checks the link again; this only shapes the question the user is asked).
export function linkMaker(text) {
  let code = text.trim();
  if (code.startsWith("parley:join/")) code = code.slice("parley:join/".length);
  else if (code.includes("#/join/")) code = code.slice(code.indexOf("#/join/") + "#/join/".length);
  try {
    const bin = atob(code.replace(/-/g, "+").replace(/_/g, "/"));
    if (bin.length < 5) return "";
    const bytes = Uint8Array.from(bin.slice(0, -4), (c) => c.charCodeAt(0));
    const p = JSON.parse(new TextDecoder().decode(bytes));
    return typeof p.m === "string" && /^@[^:]+:[0-9a-f]{64}$/.test(p.m) ? p.m : "";
  } catch {
    return "";
  }
}
