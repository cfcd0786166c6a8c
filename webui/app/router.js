// Routing: the URL hash picks the open room or a join link.
import { api } from "./api.js";
import { $ } from "./dom.js";
import { S, room } from "./state.js";
import { renderRoomList } from "./roomlist.js";
import { renderRoom } from "./timeline.js";
import { renderMembers } from "./members.js";
import { joinLinkDialog } from "./dialogs.js";

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
    openRoom(null);
    joinLinkDialog("parley:join/" + joinMatch[1]);
    return;
  }
  const roomMatch = hash.match(/^#\/room\/(.+)$/);
  openRoom(roomMatch ? decodeURIComponent(roomMatch[1]) : null);
}

function openRoom(id) {
  if (id && !S.rooms.has(id)) id = null;
  const changed = S.current !== id;
  S.current = id;
  $("app").classList.toggle("in-room", !!id);
  renderRoomList();
  renderRoom({ changed });
  if (id && changed) {
    const r = room(id);
    if (!r.membersFetched) {
      r.membersFetched = true;
      api.members(id).then((res) => {
        for (const ev of res.chunk || []) r.applyState(ev);
        if (S.current === id) renderMembers();
        renderRoomList();
      }).catch(() => { r.membersFetched = false; });
    }
    $("composer-input").focus({ preventScroll: true });
  }
}
