// The node's status: the banner, the node panel, and how each member's
// server is reached (for the members panel).
import { request } from "./api.js";
import { qrSVG } from "./qr.js";
import { $, h, kids, copyRow, openDialog } from "./dom.js";
import { S, emit, on } from "./state.js";

// ---------- node status ----------

// refreshStatus reads the node's status and announces it ("status" on the
// bus). pollStatus calls it regularly; a panel that shows it calls it as
// it opens.
export async function refreshStatus() {
  try {
    S.status = await request("GET", "/_parley/v1/status", undefined, { auth: false });
  } catch {
    S.status = null;
  }
  setBanner();
  emit("status");
}

// The status poll: every 15 s, every 10 s while the members panel shows
// how members are reached.
let pollTimer = null;
let pollFast = false;

// pollStatus starts (or, with false, stops) reading the status regularly.
export function pollStatus(run = true) {
  clearInterval(pollTimer);
  pollTimer = run ? setInterval(refreshStatus, pollFast ? 10000 : 15000) : null;
}

// pollStatusFast sets the faster pace on or off.
export function pollStatusFast(fast) {
  if (pollFast === fast) return;
  pollFast = fast;
  if (pollTimer !== null) pollStatus();
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

// ---------- how members are reached ----------

// serverOf is the server part of a user ID.
export const serverOf = (userId) => userId.slice(userId.indexOf(":") + 1);

// shortPeer shortens a peer ID for people: its last 8 characters.
export const shortPeer = (id) => (typeof id === "string" && id.length > 12 ? "…" + id.slice(-8) : String(id ?? ""));

// serverPath is how this node reaches a server, from the last status:
// {path, via, via_server, rtt_ms}, or null when the status does not say
// (our own server, an older node, a server it does not follow).
export function serverPath(server) {
  const list = S.status?.members;
  if (!Array.isArray(list) || !server || server === S.status.server_name) return null;
  const m = list.find((x) => x && x.server === server);
  return m && ["direct", "relayed", "offline"].includes(m.path) ? m : null;
}

// peerName names a peer for people: the name of a user on its server, if
// the peer is one of the members' servers (a member's relay), else its
// short peer ID.
export function peerName(id) {
  const m = Array.isArray(S.status?.members) && S.status.members.find((x) => x && x.peer === id);
  if (m?.server) {
    for (const r of S.rooms.values()) {
      const u = r.members(["join"]).find((x) => serverOf(x.state_key) === m.server);
      if (u) return u.content.displayname || u.state_key;
    }
  }
  return shortPeer(id);
}

// rttText is a round trip for people ("23 ms", "<1 ms"), or "" if unknown.
export function rttText(ms) {
  if (typeof ms !== "number" || !isFinite(ms) || ms <= 0) return "";
  return ms < 1 ? "<1 ms" : `${Math.round(ms)} ms`;
}

// pathText says how a server is reached: "direct · 23 ms", "via Carol ·
// 80 ms" or "offline". relayName(p) names a relay for people.
export function pathText(p, relayName) {
  if (p.path === "offline") return "offline";
  const rtt = rttText(p.rtt_ms);
  const how = p.path === "direct" ? "direct" : "via " + relayName(p);
  return rtt ? `${how} · ${rtt}` : how;
}

// ---------- node panel ----------

const reachWords = {
  public: "public: others can reach this node directly",
  private: "private: behind a router; others reach it through a relay or a hole punch",
  unknown: "not known yet",
};

const natWords = {
  none: "none: a public address on this device",
  mapped: "mapped: the router forwards a port",
  cone: "hole punching works",
  symmetric: "strict (symmetric): members reach this node through a relay",
  unknown: "not known yet",
};

export const publicNetworkWarning = "Uses the public libp2p network to find relays: your IP address and node ID are visible to public DHT nodes and relays.";

// Which addresses to share, by the rule of p2p.LinkAddrs: public ones and
// circuits through public relays; LAN ones only if nothing public is left;
// loopback only if nothing else is.
function addrKind(a) {
  const base = a.split("/p2p-circuit")[0];
  const m = /^\/(ip4|ip6|dns|dns4|dns6|dnsaddr)\/([^/]+)/.exec(base);
  if (!m) return 3;
  const [, proto, host] = m;
  if (proto.startsWith("dns")) return host === "localhost" ? 2 : 0;
  if (proto === "ip4") {
    const o = host.split(".").map(Number);
    if (o.length !== 4 || o.some((x) => !(x >= 0 && x <= 255))) return 3;
    if (o[0] === 127) return 2;
    if (o[0] === 0 || o[0] >= 224) return 3;
    if (o[0] === 10 || (o[0] === 172 && o[1] >= 16 && o[1] < 32) || (o[0] === 192 && o[1] === 168) || (o[0] === 169 && o[1] === 254) || (o[0] === 100 && o[1] >= 64 && o[1] < 128)) return 1;
    return 0;
  }
  const v6 = host.toLowerCase();
  if (v6 === "::1") return 2;
  if (v6 === "::" || v6.startsWith("fe80:")) return 3;
  if (/^f[cd]/.test(v6)) return 1;
  return /^[23]/.test(v6) ? 0 : 3;
}

export function shareableAddrs(addrs) {
  const list = Array.isArray(addrs) ? addrs.filter((a) => typeof a === "string") : [];
  for (let want = 0; want < 3; want++) {
    const got = list.filter((a) => addrKind(a) === want);
    if (got.length) return got;
  }
  return [];
}

const codeList = (list) => h("ul", { class: "addr-list" }, list.map((a) => h("li", {}, h("code", {}, a))));

function timeText(rfc3339) {
  const d = new Date(rfc3339);
  if (isNaN(d)) return "";
  return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

// networkRows are the node panel's lines about how the node is reached.
function networkRows(s) {
  const n = s.network && typeof s.network === "object" ? s.network : {};
  const rows = [];
  const row = (label, ...value) => rows.push(h("dt", {}, label), h("dd", {}, ...value));
  const reach = n.reachability ?? s.reachability;
  if (typeof reach === "string") row("Reachability", reachWords[reach] || reach);
  if (typeof n.nat_type === "string") row("NAT type", natWords[n.nat_type] || n.nat_type);
  const pm = n.port_mapping;
  if (pm && typeof pm === "object") {
    const mapped = Array.isArray(pm.mapped) ? pm.mapped : [];
    row("Port mapping", !pm.enabled ? "off"
      : mapped.length ? ["mapped on the router:", codeList(mapped)]
        : pm.found ? "the router answered but mapped no port"
          : "on; no UPnP or NAT-PMP router answered");
  }
  if (Array.isArray(n.reservations)) {
    row("Relay reservations", n.reservations.length
      ? h("ul", { class: "addr-list" }, n.reservations.map((r) => h("li", {}, h("span", { title: r.relay }, peerName(r.relay)), timeText(r.expires) ? ` until ${timeText(r.expires)}` : "")))
      : "none");
  }
  const mr = n.member_relay;
  if (mr && typeof mr === "object") {
    row("Relay for members", !mr.enabled ? "off"
      : !mr.running ? "on, waiting for a public address"
        : `on: serving ${Number(mr.reservations) || 0}, refused ${Number(mr.refused) || 0}`);
  }
  if (s.relay_service) row("Relay for everyone", "on (--relay-service)");
  if (typeof n.public_network === "boolean") {
    row("Public network", n.public_network
      ? ["on", h("p", { class: "warn-note" }, publicNetworkWarning)]
      : ["off", h("p", { class: "muted small-note" }, "When on (--public-network): " + publicNetworkWarning)]);
  }
  return rows;
}

export async function nodeDialog() {
  await refreshStatus();
  let stop = () => {};
  openDialog("This node", (body, close) => {
    const s = S.status;
    if (!s) {
      body.append(h("p", { class: "error" }, "Could not read the node's status."));
      return;
    }
    const all = Array.isArray(s.addrs) ? s.addrs : [];
    // The node names the addresses its links carry; shareableAddrs is
    // the same rule for an older node's status.
    const share = Array.isArray(s.link_addrs) ? s.link_addrs : shareableAddrs(all);
    // The network lines follow the status poll while the panel is open.
    const net = h("dl", { class: "kv net" }, networkRows(s));
    stop = on("status", () => S.status && net.replaceChildren(...networkRows(S.status)));
    body.append(...kids(
      s.connected_peers ? null : h("p", { class: "banner", style: "border-radius:8px" }, "Not connected to any other device: others cannot reach you and your messages wait on this device."),
      h("label", {}, "Your user ID"), copyRow(S.me.user_id, "user ID"),
      qrSVG(S.me.user_id, { label: "QR code of your user ID" }),
      h("label", {}, "Server name"), copyRow(s.server_name, "server name"),
      h("dl", { class: "kv" },
        h("dt", {}, "Connected peers"), h("dd", {}, String(s.connected_peers ?? 0)),
        h("dt", {}, "Rooms"), h("dd", {}, String(s.rooms ?? 0)),
        h("dt", {}, "Peer ID"), h("dd", {}, h("code", {}, s.peer_id || "")),
        h("dt", {}, "Data folder"), h("dd", {}, h("code", {}, s.data_dir || "")),
        h("dt", {}, "Version"), h("dd", {}, s.version || ""),
      ),
      h("h3", {}, "Network"),
      net,
      h("label", {}, "Addresses worth sharing"),
      share.length ? h("p", { class: "muted small-note" }, "Someone elsewhere can reach this node at one of these (", h("code", { class: "cmd" }, "parley run --bootstrap ADDRESS"), "). Invite links carry them already.") : null,
      share.length ? h("div", { class: "share-addrs" }, share.map((a) => copyRow(a, "address"))) : h("p", { class: "muted" }, "None yet: others can reach this node only on this network."),
      all.length > share.length ? h("details", { class: "all-addrs" }, h("summary", {}, `All addresses (${all.length})`), codeList(all)) : null,
      h("div", { class: "dlg-actions" }, h("button", { type: "button", onclick: close, autofocus: true }, "Close")),
    ));
  }, { onClose: () => stop() });
}
