// The app's state: the session, rooms, invites and what the user has seen.
// It imports nothing and navigates nowhere: what should follow a change
// (opening a room, answering a click in the timeline) is announced on a
// small bus whose listeners app.js and the views set.

// ---------- the bus ----------

const listeners = new Map(); // name -> [f]

// on makes f hear every emit(name, ...); it returns a function that stops it.
export function on(name, f) {
  const list = listeners.get(name) || [];
  list.push(f);
  listeners.set(name, list);
  return () => listeners.set(name, (listeners.get(name) || []).filter((g) => g !== f));
}

export function emit(name, ...args) {
  for (const f of listeners.get(name) || []) f(...args);
}

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

// Bounds on what other members can make the app hold per room.
const MAX_REACTION_KEYS = 50; // distinct keys shown per event
const MAX_EDITS = 100; // edits kept per event (the latest wins)

// relatesTo is an event's m.relates_to, or {}.
export const relatesTo = (ev) => ev?.content?.["m.relates_to"] || {};

class Room {
  constructor(id) {
    this.id = id;
    this.state = new Map(); // "type\u0000stateKey" -> event
    this.events = []; // timeline, oldest first
    this.ids = new Set();
    this.byId = new Map(); // event ID -> timeline event
    this.prevBatch = null;
    this.atStart = false;
    this.loadingOlder = false;
    this.pending = []; // {txnId, content, status, eventId, error, upload?}
    this.membersFetched = false;
    // What other events say about an event, kept apart from it.
    this.edits = new Map(); // original ID -> [m.replace events]
    this.reactions = new Map(); // target ID -> Map key -> Map sender -> reaction event ID
    this.relOf = new Map(); // edit or reaction ID -> {kind, target, key, sender}
    this.redactedIds = new Set(); // IDs redacted, seen before or after their event
    this.ver = new Map(); // event ID -> a number bumped whenever its view must change
    this.fetched = new Map(); // event ID -> event fetched for a quote (null while asked)
    this.threads = new Map(); // thread root ID -> Set of its replies' IDs (loaded ones)
    this.receipts = new Map(); // user ID -> {eventId, ts}
    this.typing = []; // user IDs typing now, not the user
  }
  st(type, key = "") {
    return this.state.get(type + "\u0000" + key)?.content;
  }
  applyState(ev) {
    if (ev.state_key === undefined || ev.state_key === null) return;
    this.state.set(ev.type + "\u0000" + ev.state_key, ev);
    this.stateVer = (this.stateVer || 0) + 1;
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
  avatarURL(userId) {
    const u = this.st("m.room.member", userId)?.avatar_url;
    return typeof u === "string" ? u : "";
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
  // canSend says whether the user may send a (non-state) event of this type.
  canSend(type) {
    const pl = this.powerLevels();
    return S.me && this.levelOf(S.me.user_id) >= (pl.events?.[type] ?? pl.events_default ?? 0);
  }
  // canRedact: one's own events with the right to send redactions; others'
  // with the redact level too.
  canRedact(ev) {
    if (!S.me || !ev?.event_id || !this.canSend("m.room.redaction")) return false;
    return ev.sender === S.me.user_id || this.can("redact");
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
      if (e.type === "m.room.message" && relatesTo(e).rel_type !== "m.replace") return e;
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
      if (e.type === "m.room.message" && e.sender !== S.me?.user_id && e.origin_server_ts > seen && e.content?.body !== undefined && relatesTo(e).rel_type !== "m.replace") n++;
    }
    return n;
  }
  addEvents(evs, { prepend = false } = {}) {
    const fresh = evs.filter((e) => e.event_id && !this.ids.has(e.event_id));
    for (const e of fresh) {
      this.ids.add(e.event_id);
      this.byId.set(e.event_id, e);
    }
    if (prepend) this.events = fresh.concat(this.events);
    else this.events.push(...fresh);
    for (const e of fresh) this.absorb(e);
    return fresh;
  }
  // forget drops the timeline (a gap too wide to fill): scrollback starts afresh.
  forget() {
    this.events = [];
    this.ids = new Set();
    this.byId = new Map();
  }
  bump(id) {
    this.ver.set(id, (this.ver.get(id) || 0) + 1);
  }
  // absorb notes what an event says about others: an edit, a reaction, a
  // redaction, and an edit the server bundled with it.
  absorb(ev) {
    if (ev.type === "m.room.redaction") {
      const target = ev.content?.redacts || ev.redacts;
      if (typeof target === "string") this.redact(target, ev);
      return;
    }
    const bundled = ev.unsigned?.["m.relations"]?.["m.replace"];
    if (bundled?.event_id && bundled.content) this.noteRelation(bundled);
    this.noteRelation(ev);
  }
  noteRelation(ev) {
    const rel = relatesTo(ev);
    if (typeof rel.event_id !== "string" || this.redactedIds.has(ev.event_id) || this.relOf.has(ev.event_id)) return;
    if (rel.rel_type === "m.thread" && this.byId.has(ev.event_id)) {
      const replies = this.threads.get(rel.event_id) || new Set();
      if (!replies.has(ev.event_id)) {
        replies.add(ev.event_id);
        this.threads.set(rel.event_id, replies);
        this.bump(rel.event_id);
      }
      return;
    }
    if (rel.rel_type === "m.replace" && ev.type === "m.room.message" && ev.content?.["m.new_content"]) {
      const list = this.edits.get(rel.event_id) || [];
      if (list.length >= MAX_EDITS) list.shift();
      list.push(ev);
      this.edits.set(rel.event_id, list);
      this.relOf.set(ev.event_id, { kind: "edit", target: rel.event_id });
      this.bump(rel.event_id);
    } else if (rel.rel_type === "m.annotation" && ev.type === "m.reaction" && typeof rel.key === "string" && rel.key.length <= 64) {
      const keys = this.reactions.get(rel.event_id) || new Map();
      if (!keys.has(rel.key) && keys.size >= MAX_REACTION_KEYS) return;
      const who = keys.get(rel.key) || new Map();
      if (who.has(ev.sender)) return; // one per sender and key
      who.set(ev.sender, ev.event_id);
      keys.set(rel.key, who);
      this.reactions.set(rel.event_id, keys);
      this.relOf.set(ev.event_id, { kind: "reaction", target: rel.event_id, key: rel.key, sender: ev.sender });
      this.bump(rel.event_id);
    }
  }
  redact(id, because) {
    this.redactedIds.add(id);
    const rel = this.relOf.get(id);
    if (rel) {
      this.relOf.delete(id);
      if (rel.kind === "edit") {
        this.edits.set(rel.target, (this.edits.get(rel.target) || []).filter((e) => e.event_id !== id));
      } else {
        const who = this.reactions.get(rel.target)?.get(rel.key);
        if (who?.get(rel.sender) === id) who.delete(rel.sender);
        if (who && !who.size) this.reactions.get(rel.target).delete(rel.key);
      }
      this.bump(rel.target);
    }
    const ev = this.byId.get(id);
    const root = relatesTo(ev).rel_type === "m.thread" ? relatesTo(ev).event_id : null;
    if (root && this.threads.get(root)?.delete(id)) this.bump(root);
    if (ev && !ev.unsigned?.redacted_because) {
      ev.content = {};
      ev.unsigned = { ...(ev.unsigned || {}), redacted_because: because };
      if (rel) ev.hidden = true; // a removed edit or reaction shows nothing
      this.bump(id);
    }
  }
  // latestEdit is the edit that applies to ev: by its sender, the latest by
  // origin_server_ts (ties by event ID), none if ev is redacted.
  latestEdit(ev) {
    if (!ev || ev.unsigned?.redacted_because) return null;
    let best = null;
    for (const e of this.edits.get(ev.event_id) || []) {
      if (e.sender !== ev.sender) continue;
      if (!best || e.origin_server_ts > best.origin_server_ts || (e.origin_server_ts === best.origin_server_ts && e.event_id > best.event_id)) best = e;
    }
    return best;
  }
  // shownContent is what an event says now: its latest edit's m.new_content.
  shownContent(ev) {
    const edit = this.latestEdit(ev);
    const nc = edit?.content?.["m.new_content"];
    return nc && typeof nc === "object" ? nc : ev.content || {};
  }
  // event is a timeline event, or one fetched for a quote.
  event(id) {
    return this.byId.get(id) || this.fetched.get(id) || null;
  }
  // threadCount is how many replies a thread root has: those loaded, or
  // the server's count if it says more.
  threadCount(ev) {
    const local = this.threads.get(ev.event_id)?.size || 0;
    const bundled = Number(ev.unsigned?.["m.relations"]?.["m.thread"]?.count) || 0;
    return Math.max(local, bundled);
  }
  // setReceipt records a user's read receipt if it is newer than the one held.
  setReceipt(userId, eventId, ts) {
    const old = this.receipts.get(userId);
    if (old && old.ts > ts) return false;
    if (old?.eventId === eventId) return false;
    this.receipts.set(userId, { eventId, ts });
    return true;
  }
}

// openWhenReady opens a room now if sync has delivered it, or as soon as it does.
export function openWhenReady(id) {
  if (S.rooms.has(id)) emit("navigate", "#/room/" + encodeURIComponent(id));
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
