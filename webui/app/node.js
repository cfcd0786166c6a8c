// The node's status: the banner and the node panel.
import { request } from "./api.js";
import { qrSVG } from "./qr.js";
import { $, h, kids, copyRow, openDialog } from "./dom.js";
import { S } from "./state.js";

// ---------- node status ----------

export async function refreshStatus() {
  try {
    S.status = await request("GET", "/_parley/v1/status", undefined, { auth: false });
  } catch {
    S.status = null;
  }
  setBanner();
}

let bannerOverride = "";
export function setBanner(msg) {
  if (msg !== undefined) bannerOverride = msg;
  const b = $("banner");
  let text = bannerOverride;
  if (!text && S.status && S.me && !S.status.connected_peers) {
    text = "Not connected to any other device. Messages stay on this device until a peer connects (same network, or a --bootstrap address).";
  }
  b.textContent = text;
  b.hidden = !text;
}

// ---------- node panel ----------

export async function nodeDialog() {
  await refreshStatus();
  openDialog("This node", (body, close) => {
    const s = S.status;
    if (!s) {
      body.append(h("p", { class: "error" }, "Could not read the node's status."));
      return;
    }
    const reach = s.reachability;
    const reachText = reach === undefined ? null : typeof reach === "string" ? reach : JSON.stringify(reach);
    body.append(...kids(
      s.connected_peers ? null : h("p", { class: "banner", style: "border-radius:8px" }, "Not connected to any other device: others cannot reach you and your messages wait on this device."),
      h("label", {}, "Your user ID"), copyRow(S.me.user_id, "user ID"),
      qrSVG(S.me.user_id, { label: "QR code of your user ID" }),
      h("label", {}, "Server name"), copyRow(s.server_name, "server name"),
      h("dl", { class: "kv" },
        h("dt", {}, "Connected peers"), h("dd", {}, String(s.connected_peers ?? 0)),
        reachText ? [h("dt", {}, "Reachability"), h("dd", {}, reachText)] : null,
        h("dt", {}, "Rooms"), h("dd", {}, String(s.rooms ?? 0)),
        h("dt", {}, "Peer ID"), h("dd", {}, h("code", {}, s.peer_id || "")),
        h("dt", {}, "Listening on"), h("dd", {}, (s.addrs || []).length ? h("ul", { style: "margin:0;padding-left:1rem" }, s.addrs.map((a) => h("li", {}, h("code", {}, a)))) : "—"),
        h("dt", {}, "Data folder"), h("dd", {}, h("code", {}, s.data_dir || "")),
        h("dt", {}, "Version"), h("dd", {}, s.version || ""),
      ),
      h("div", { class: "dlg-actions" }, h("button", { type: "button", onclick: close, autofocus: true }, "Close")),
    ));
  });
}
