// The /sync loop and how its results update the state.
import { api, APIError } from "./api.js";
import { errText } from "./dom.js";
import { S, room } from "./state.js";
import { setBanner } from "./node.js";
import { go, route } from "./router.js";
import { renderRoomList } from "./roomlist.js";
import { renderRoom } from "./timeline.js";
import { noteSync } from "./roomlist.js";
import { notifySync } from "./notify.js";

// ---------- sync ----------

export async function syncLoop() {
  if (S.syncing) return;
  S.syncing = true;
  let backoff = 1000;
  const key = "parley.filter." + S.me.user_id;
  while (S.syncing && S.me) {
    try {
      if (!S.filterId) {
        S.filterId = localStorage.getItem(key);
        if (!S.filterId) {
          const f = await api.putFilter(S.me.user_id, { room: { timeline: { limit: 50 } } });
          S.filterId = f.filter_id;
          localStorage.setItem(key, S.filterId);
        }
      }
      S.syncAbort = new AbortController();
      const res = await api.sync({ filter: S.filterId, since: S.since, timeout: S.since ? 30000 : 0 }, S.syncAbort.signal);
      const initial = !S.since;
      await processSync(res, initial);
      S.since = res.next_batch;
      backoff = 1000;
      setBanner("");
    } catch (e) {
      if (!S.syncing || !S.me) return;
      if (e?.name === "AbortError") continue;
      if (e instanceof APIError && e.status === 404 && S.filterId) {
        // the stored filter is gone (new data dir): make a new one
        localStorage.removeItem(key);
        S.filterId = null;
        continue;
      }
      if (e instanceof APIError && e.status === 401) return;
      setBanner("Lost contact with this node: " + errText(e) + " Retrying…");
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(backoff * 2, 15000);
    }
  }
}

async function processSync(res, initial) {
  const join = res.rooms?.join || {};
  const invite = res.rooms?.invite || {};
  const leave = res.rooms?.leave || {};
  const touched = new Set();
  noteSync(res, initial); // the shell's hook: unread counts, m.direct, muted rooms, own profile
  for (const [id, jr] of Object.entries(join)) {
    const r = room(id);
    S.invites.delete(id);
    for (const ev of jr.state?.events || []) r.applyState(ev);
    const tl = jr.timeline || {};
    const evs = tl.events || [];
    if (tl.limited && r.events.length && !initial) {
      await fillGap(r, evs, tl.prev_batch);
    } else {
      if (!r.events.length && tl.prev_batch) r.prevBatch = tl.prev_batch;
      if (!r.events.length && !tl.limited && !tl.prev_batch) r.atStart = evs.some((e) => e.type === "m.room.create");
      r.addEvents(evs);
    }
    for (const ev of evs) {
      r.applyState(ev);
      const txn = ev.unsigned?.transaction_id;
      r.pending = r.pending.filter((p) => !(txn && p.txnId === txn) && p.eventId !== ev.event_id);
    }
    for (const ev of jr.ephemeral?.events || []) applyEphemeral(r, ev);
    touched.add(id);
    if (S.waitingFor.has(id)) {
      S.waitingFor.delete(id);
      go("#/room/" + encodeURIComponent(id));
    }
  }
  for (const [id, ir] of Object.entries(invite)) {
    if (S.rooms.has(id)) continue;
    const state = new Map();
    for (const ev of ir.invite_state?.events || []) state.set(ev.type + "\u0000" + (ev.state_key ?? ""), ev);
    S.invites.set(id, { id, state });
    touched.add(id);
  }
  for (const id of Object.keys(leave)) {
    S.rooms.delete(id);
    S.invites.delete(id);
    if (S.current === id) go("#/");
    touched.add(id);
  }
  if (initial && !S.current && /^#\/room\//.test(location.hash)) route(); // a reload on a room's URL
  if (touched.size || initial) {
    renderRoomList();
    if (S.current && touched.has(S.current)) renderRoom({ fromSync: true });
  }
  notifySync(res, initial); // the shell's hook: notifications while hidden
}

// applyEphemeral takes typing notices and read receipts.
function applyEphemeral(r, ev) {
  if (ev.type === "m.typing") {
    const ids = Array.isArray(ev.content?.user_ids) ? ev.content.user_ids : [];
    r.typing = ids.filter((u) => typeof u === "string" && u !== S.me.user_id).slice(0, 50);
  } else if (ev.type === "m.receipt") {
    for (const [eventId, kinds] of Object.entries(ev.content || {})) {
      for (const kind of ["m.read", "m.read.private"]) {
        for (const [user, rc] of Object.entries(kinds?.[kind] || {})) {
          if (rc?.thread_id && rc.thread_id !== "main") continue;
          if (r.receipts.size < 1000 || r.receipts.has(user)) r.setReceipt(user, eventId, Number(rc?.ts) || 0);
        }
      }
    }
  }
}

// fillGap handles a limited timeline: page back from prev_batch until
// the events we already hold are reached (a few pages at most); if they
// never are, the old events are dropped and scrollback starts afresh.
async function fillGap(r, evs, prevBatch) {
  let chunk = evs.slice();
  let from = prevBatch;
  let joined = chunk.some((e) => r.ids.has(e.event_id));
  for (let i = 0; i < 5 && !joined && from; i++) {
    try {
      const res = await api.messages(r.id, from, 50);
      const older = (res.chunk || []).slice().reverse();
      joined = older.some((e) => r.ids.has(e.event_id));
      chunk = older.concat(chunk);
      from = res.end && res.end !== from && older.length ? res.end : null;
    } catch {
      break;
    }
  }
  if (joined) {
    r.addEvents(chunk);
  } else {
    r.forget();
    r.prevBatch = from || prevBatch;
    r.atStart = !from;
    r.addEvents(chunk);
  }
}
