// Routing: the URL hash picks the open room or a join link. The router
// only reads the hash; what a route opens is up to the listeners app.js
// sets on the bus ("open-room" with a room ID or null, "join-link" with
// a parley:join/ link), so it imports no view.
import { S, emit } from "./state.js";

// ---------- routing ----------

export function go(hash) {
  if (location.hash !== hash) location.hash = hash;
  else route();
}

export function route() {
  const hash = location.hash || "#/";
  if (!S.me) return;
  const joinMatch = hash.match(/^#\/join\/(.+)$/);
  if (joinMatch) {
    history.replaceState(null, "", "#/");
    emit("open-room", null);
    emit("join-link", "parley:join/" + joinMatch[1]);
    return;
  }
  const roomMatch = hash.match(/^#\/room\/(.+)$/);
  let id = null;
  if (roomMatch) {
    try {
      id = decodeURIComponent(roomMatch[1]);
    } catch {
      id = null; // a mangled URL opens no room
    }
  }
  emit("open-room", id);
}
