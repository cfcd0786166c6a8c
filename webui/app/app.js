// parley's web app: plain ES modules, no build step. This is the entry point
// that index.html loads: it wires the page's buttons and starts the session.
// The node's status comes from /_parley/v1/status (see node.js and api.js).
import { api, session, setToken, APIError } from "./api.js";
import { $ } from "./dom.js";
import { S, markSeen, on } from "./state.js";
import { showAuth, logout, resetSession, startApp } from "./auth.js";
import { setBanner, nodeDialog } from "./node.js";
import { go, route } from "./router.js";
import { renderRoomList } from "./roomlist.js";
import { loadOlder, openRoom } from "./timeline.js";
import { sendMessage, wireComposer } from "./composer.js";
import { toggleMembers } from "./members.js";
import { e2eeDialog } from "./e2ee.js";
import { wireShell } from "./shell.js";
import { createRoomDialog, inviteDialog, settingsDialog, leaveDialog, linkDialog, joinLinkDialog } from "./dialogs.js";

// ---------- wiring ----------

function wire() {
  // The bus: state and the router announce, the views act (no import cycles).
  on("navigate", go);
  on("open-room", openRoom);
  on("join-link", (link) => joinLinkDialog(link));
  wireComposer();
  $("logout-btn").addEventListener("click", logout);
  $("me-btn").addEventListener("click", nodeDialog);
  $("node-btn").addEventListener("click", nodeDialog);
  $("new-room-btn").addEventListener("click", createRoomDialog);
  $("join-link-btn").addEventListener("click", () => joinLinkDialog());
  $("back-btn").addEventListener("click", () => go("#/"));
  const cur = () => S.rooms.get(S.current);
  $("invite-btn").addEventListener("click", () => cur() && inviteDialog(cur()));
  $("link-btn").addEventListener("click", () => cur() && linkDialog(cur()));
  $("settings-btn").addEventListener("click", () => cur() && settingsDialog(cur()));
  $("leave-btn").addEventListener("click", () => cur() && leaveDialog(cur()));
  $("members-btn").addEventListener("click", toggleMembers);
  $("e2ee-btn").addEventListener("click", () => cur() && e2eeDialog(cur()));
  const input = $("composer-input");
  const grow = () => {
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight + 2, 160) + "px";
  };
  input.addEventListener("input", grow);
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      $("composer").requestSubmit();
    }
  });
  $("composer").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const r = cur();
    const text = input.value;
    if (!r || !text.trim()) return;
    input.value = "";
    grow();
    sendMessage(r, text);
  });
  $("timeline").addEventListener("scroll", () => {
    const r = cur();
    if (r && $("timeline").scrollTop < 150) loadOlder(r);
  });
  window.addEventListener("hashchange", route);
  wireShell();
  document.addEventListener("visibilitychange", () => {
    const r = cur();
    if (r && document.visibilityState === "visible") {
      markSeen(r);
      renderRoomList();
    }
  });
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && !document.querySelector("dialog[open]") && S.membersOpen && window.matchMedia("(max-width: 760px)").matches && S.current) toggleMembers();
  });
}

async function main() {
  const saved = session.load();
  if (saved?.access_token) {
    S.me = saved;
    setToken(saved.access_token);
    try {
      const who = await api.whoami();
      S.me.user_id = who.user_id;
      startApp();
      return;
    } catch (e) {
      if (!(e instanceof APIError)) {
        // the node is unreachable: keep the session and retry
        setBanner("Cannot reach this node. Retrying…");
        setTimeout(main, 3000);
        return;
      }
      resetSession();
    }
  }
  // A join link opened while logged out stays in the URL: route() picks it
  // up once logged in.
  await showAuth();
}

wire();
main();
