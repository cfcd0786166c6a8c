// The node's HTTP API: the Matrix client-server API and parley's own.

const V3 = "/_matrix/client/v3";
const SESSION_KEY = "parley.session";

export class APIError extends Error {
  constructor(status, body) {
    super(body?.error || `request failed (HTTP ${status})`);
    this.status = status;
    this.errcode = body?.errcode || "";
    this.body = body || {};
  }
}

export const session = {
  load() {
    try {
      return JSON.parse(localStorage.getItem(SESSION_KEY) || "null");
    } catch {
      return null;
    }
  },
  save(s) {
    localStorage.setItem(SESSION_KEY, JSON.stringify(s));
  },
  clear() {
    localStorage.removeItem(SESSION_KEY);
  },
};

let token = session.load()?.access_token || "";
let onUnauthorized = () => {};

export function setToken(t) {
  token = t;
}
export function setUnauthorizedHandler(f) {
  onUnauthorized = f;
}

export async function request(method, path, body, { signal, auth = true } = {}) {
  const headers = {};
  if (auth && token) headers.Authorization = "Bearer " + token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
    cache: "no-store",
  });
  let data = null;
  const text = await res.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { error: text };
    }
  }
  if (!res.ok) {
    const err = new APIError(res.status, data);
    if (res.status === 401 && auth && token && err.errcode === "M_UNKNOWN_TOKEN") onUnauthorized(err);
    throw err;
  }
  return data ?? {};
}

const enc = encodeURIComponent;
const q = (params) => {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") p.set(k, v);
  const s = p.toString();
  return s ? "?" + s : "";
};

export const api = {
  // The first account claims the node with its claim code, through the
  // spec's registration-token stage.
  register: (username, password, claimCode) =>
    request("POST", V3 + "/register", {
      username,
      password,
      initial_device_display_name: "parley web app",
      auth: { type: "m.login.registration_token", token: claimCode, session: "register" },
    }, { auth: false }),
  login: (user, password) =>
    request("POST", V3 + "/login", {
      type: "m.login.password",
      identifier: { type: "m.id.user", user },
      password,
      initial_device_display_name: "parley web app",
    }, { auth: false }),
  logout: () => request("POST", V3 + "/logout", {}),
  whoami: () => request("GET", V3 + "/account/whoami"),
  putFilter: (userId, filter) => request("POST", `${V3}/user/${enc(userId)}/filter`, filter),
  sync: (params, signal) => request("GET", V3 + "/sync" + q(params), undefined, { signal }),
  messages: (roomId, from, limit = 30) => request("GET", `${V3}/rooms/${enc(roomId)}/messages` + q({ dir: "b", from, limit })),
  members: (roomId) => request("GET", `${V3}/rooms/${enc(roomId)}/members`),
  send: (roomId, txnId, content) => request("PUT", `${V3}/rooms/${enc(roomId)}/send/m.room.message/${enc(txnId)}`, content),
  // The conversation view's calls (appt): any event type, redactions,
  // typing, receipts, one event (for a quoted original).
  sendEvent: (roomId, type, txnId, content) => request("PUT", `${V3}/rooms/${enc(roomId)}/send/${enc(type)}/${enc(txnId)}`, content),
  redact: (roomId, eventId, txnId, reason) => request("PUT", `${V3}/rooms/${enc(roomId)}/redact/${enc(eventId)}/${enc(txnId)}`, reason ? { reason } : {}),
  typing: (roomId, userId, typing, timeout = 30000) => request("PUT", `${V3}/rooms/${enc(roomId)}/typing/${enc(userId)}`, typing ? { typing, timeout } : { typing }),
  receipt: (roomId, eventId, type = "m.read") => request("POST", `${V3}/rooms/${enc(roomId)}/receipt/${enc(type)}/${enc(eventId)}`, {}),
  event: (roomId, eventId) => request("GET", `${V3}/rooms/${enc(roomId)}/event/${enc(eventId)}`),
  threadReplies: (roomId, rootId, limit = 100) => request("GET", `/_matrix/client/v1/rooms/${enc(roomId)}/relations/${enc(rootId)}/m.thread` + q({ dir: "f", limit })),
  putState: (roomId, type, stateKey, content) => request("PUT", `${V3}/rooms/${enc(roomId)}/state/${enc(type)}/${enc(stateKey)}`, content),
  createRoom: (body) => request("POST", V3 + "/createRoom", body),
  invite: (roomId, userId) => request("POST", `${V3}/rooms/${enc(roomId)}/invite`, { user_id: userId }),
  join: (roomId) => request("POST", `${V3}/join/${enc(roomId)}`, {}),
  leave: (roomId) => request("POST", `${V3}/rooms/${enc(roomId)}/leave`, {}),
  // The node's owner refuses every invite from a server, now and later.
  blockServer: (server) => request("PUT", `/_parley/v1/blocked_servers/${enc(server)}`, {}),
  kick: (roomId, userId) => request("POST", `${V3}/rooms/${enc(roomId)}/kick`, { user_id: userId }),
  ban: (roomId, userId) => request("POST", `${V3}/rooms/${enc(roomId)}/ban`, { user_id: userId }),
  profile: (userId) => request("GET", `${V3}/profile/${enc(userId)}`),
  setDisplayName: (userId, name) => request("PUT", `${V3}/profile/${enc(userId)}/displayname`, { displayname: name }),

  // ---- shell (apps): profile, room settings, directory, direct chats, search ----
  setAvatarURL: (userId, mxc) => request("PUT", `${V3}/profile/${enc(userId)}/avatar_url`, { avatar_url: mxc }),
  unban: (roomId, userId) => request("POST", `${V3}/rooms/${enc(roomId)}/unban`, { user_id: userId }),
  // joinVia joins a room by ID through the servers named (e.g. the one
  // whose directory listed it).
  joinVia: (roomId, via = []) => request("POST", `${V3}/join/${enc(roomId)}` + (via.length ? "?" + via.map((s) => "via=" + enc(s)).join("&") : ""), {}),
  knock: (roomId, via = []) => request("POST", `${V3}/knock/${enc(roomId)}` + (via.length ? "?" + via.map((s) => "via=" + enc(s)).join("&") : ""), {}),
  roomVisibility: (roomId) => request("GET", `${V3}/directory/list/room/${enc(roomId)}`),
  setRoomVisibility: (roomId, visibility) => request("PUT", `${V3}/directory/list/room/${enc(roomId)}`, { visibility }),
  publicRooms: (server, body) => request("POST", V3 + "/publicRooms" + q({ server }), body),
  accountData: (userId, type) => request("GET", `${V3}/user/${enc(userId)}/account_data/${enc(type)}`),
  putAccountData: (userId, type, content) => request("PUT", `${V3}/user/${enc(userId)}/account_data/${enc(type)}`, content),
  pushRules: () => request("GET", V3 + "/pushrules/"),
  putPushRule: (kind, ruleId, rule) => request("PUT", `${V3}/pushrules/global/${enc(kind)}/${enc(ruleId)}`, rule),
  deletePushRule: (kind, ruleId) => request("DELETE", `${V3}/pushrules/global/${enc(kind)}/${enc(ruleId)}`),
  search: (body, nextBatch) => request("POST", V3 + "/search" + q({ next_batch: nextBatch }), body),
  context: (roomId, eventId, limit = 5) => request("GET", `${V3}/rooms/${enc(roomId)}/context/${enc(eventId)}` + q({ limit })),

  status: () => request("GET", "/_parley/v1/status", undefined, { auth: false }),
  createLink: (roomId, body) => request("POST", `/_parley/v1/rooms/${enc(roomId)}/links`, body),
  links: (roomId) => request("GET", `/_parley/v1/rooms/${enc(roomId)}/links`),
  revokeLink: (roomId, id) => request("DELETE", `/_parley/v1/rooms/${enc(roomId)}/links/${enc(id)}`),
  // inPerson says the user got the link from its maker's hand: the node
  // then records the maker's device as verified.
  joinLink: (link, inPerson = false) => request("POST", "/_parley/v1/join_link", inPerson ? { link, in_person: true } : { link }),
  roomE2EE: (roomId) => request("GET", `/_parley/v1/rooms/${enc(roomId)}/e2ee`),
  verify: (roomId, server, via) => request("POST", `/_parley/v1/rooms/${enc(roomId)}/e2ee/verify`, { server, via }),
  unverify: (roomId, server) => request("DELETE", `/_parley/v1/rooms/${enc(roomId)}/e2ee/verify/${enc(server)}`),
};
