// The app's state: the session, rooms, invites and what the user has seen.
import { go } from "./router.js";

// ---------- state ----------

export const S = {
  me: null, // {user_id, access_token, device_id}
  rooms: new Map(), // roomId -> Room
  invites: new Map(), // roomId -> {id, state: Map}
  current: null,
  since: null,
  filterId: null,
  syncing: false,
  syncAbort: null,
  seen: {}, // roomId -> origin_server_ts of the last event the user saw
  status: null,
  membersOpen: window.matchMedia("(min-width: 1100px)").matches,
  waitingFor: new Set(), // rooms we just joined/created and want to open
};

class Room {
  constructor(id) {
    this.id = id;
    this.state = new Map(); // "type\u0000stateKey" -> event
    this.events = []; // timeline, oldest first
    this.ids = new Set();
    this.prevBatch = null;
    this.atStart = false;
    this.loadingOlder = false;
    this.pending = []; // {txnId, content, status, eventId, error}
    this.membersFetched = false;
  }
  st(type, key = "") {
    return this.state.get(type + "\u0000" + key)?.content;
  }
  applyState(ev) {
    if (ev.state_key === undefined || ev.state_key === null) return;
    this.state.set(ev.type + "\u0000" + ev.state_key, ev);
  }
  members(filter = ["join", "invite"]) {
    const out = [];
    for (const ev of this.state.values()) {
      if (ev.type === "m.room.member" && filter.includes(ev.content?.membership)) out.push(ev);
    }
    return out;
  }
  displayName(userId) {
    const m = this.st("m.room.member", userId);
    return m?.displayname || userId;
  }
  powerLevels() {
    const pl = this.st("m.room.power_levels") || {};
    return pl;
  }
  creators() {
    // Room versions 12 and later give the creators unlimited power.
    const create = this.state.get("m.room.create\u0000");
    if (!create) return [];
    const v = parseInt(create.content?.room_version || "1", 10);
    if (!(v >= 12)) return [];
    return [create.sender, ...(create.content?.additional_creators || [])];
  }
  levelOf(userId) {
    if (this.creators().includes(userId)) return Infinity;
    const pl = this.powerLevels();
    if (pl.users && userId in pl.users) return pl.users[userId];
    if (!this.st("m.room.power_levels")) {
      // without a power levels event the creator has 100
      const create = this.state.get("m.room.create\u0000");
      return create && create.sender === userId ? 100 : 0;
    }
    return pl.users_default ?? 0;
  }
  required(action) {
    const pl = this.powerLevels();
    const dflt = { kick: 50, ban: 50, invite: 0, redact: 50 };
    if (action in dflt) return pl[action] ?? dflt[action];
    // a state event type
    return pl.events?.[action] ?? pl.state_default ?? 50;
  }
  can(action) {
    return S.me && this.levelOf(S.me.user_id) >= this.required(action);
  }
  name() {
    const n = this.st("m.room.name")?.name;
    if (n) return n;
    const others = this.members(["join", "invite"]).filter((m) => m.state_key !== S.me?.user_id);
    if (others.length) {
      const names = others.slice(0, 3).map((m) => m.content.displayname || m.state_key);
      return names.join(", ") + (others.length > 3 ? ` and ${others.length - 3} more` : "");
    }
    return "Empty room";
  }
  lastMessage() {
    for (let i = this.events.length - 1; i >= 0; i--) {
      const e = this.events[i];
      if (e.type === "m.room.message") return e;
    }
    return null;
  }
  lastTs() {
    const e = this.events[this.events.length - 1];
    return e ? e.origin_server_ts : 0;
  }
  unread() {
    const seen = S.seen[this.id] || 0;
    let n = 0;
    for (const e of this.events) {
      if (e.type === "m.room.message" && e.sender !== S.me?.user_id && e.origin_server_ts > seen && e.content?.body !== undefined) n++;
    }
    return n;
  }
  addEvents(evs, { prepend = false } = {}) {
    const fresh = evs.filter((e) => e.event_id && !this.ids.has(e.event_id));
    for (const e of fresh) this.ids.add(e.event_id);
    if (prepend) this.events = fresh.concat(this.events);
    else this.events.push(...fresh);
    return fresh;
  }
}

// openWhenReady opens a room now if sync has delivered it, or as soon as it does.
export function openWhenReady(id) {
  if (S.rooms.has(id)) go("#/room/" + encodeURIComponent(id));
  else S.waitingFor.add(id);
}

export function room(id) {
  let r = S.rooms.get(id);
  if (!r) {
    r = new Room(id);
    S.rooms.set(id, r);
  }
  return r;
}

function seenKey() {
  return "parley.seen." + S.me.user_id;
}
export function loadSeen() {
  try {
    S.seen = JSON.parse(localStorage.getItem(seenKey()) || "{}");
  } catch {
    S.seen = {};
  }
}
export function markSeen(r) {
  const ts = r.lastTs();
  if (ts && (S.seen[r.id] || 0) < ts) {
    S.seen[r.id] = ts;
    localStorage.setItem(seenKey(), JSON.stringify(S.seen));
  }
}
