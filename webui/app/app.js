// A minimal status view until the full app lands.
const dl = document.getElementById("status");
function row(name, value) {
  const dt = document.createElement("dt");
  dt.textContent = name;
  const dd = document.createElement("dd");
  const code = document.createElement("code");
  code.textContent = value;
  dd.append(code);
  dl.append(dt, dd);
}
const res = await fetch("/_parley/v1/status");
if (res.ok) {
  const s = await res.json();
  row("Server name", s.server_name);
  row("Peer ID", s.peer_id);
  row("Connected peers", String(s.connected_peers ?? 0));
  for (const a of s.addrs ?? []) row("Address", a);
}
