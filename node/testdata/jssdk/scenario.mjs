// A matrix-js-sdk client (what Element is built on) against two parley
// nodes: register, sync, create, invite, join, messages both ways,
// typing, receipts, paging back to m.room.create (bob lazy-loads
// members, as Element does), and a public room found in the directory
// and joined by its alias on the other node. Run by
// TestMatrixJSSDKScenario (node/jssdk_test.go), which starts the nodes
// and passes their addresses and claim codes in the environment. It
// prints one line per step and exits non-zero at the first that fails.
import * as sdk from "matrix-js-sdk";
import { logger } from "matrix-js-sdk/lib/logger.js";

logger.setLevel?.("warn", false);

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const stepTimeout = Number(process.env.PARLEY_STEP_TIMEOUT_MS || 30000);

let current = "start";
function step(name) {
  current = name;
  console.log(`step ${name}`);
}

// waitFor resolves when check() is true, checked now, on every event of
// the given emitter, and every 100 ms (the SDK changes some of what is
// checked without emitting those events: a room's own membership),
// within the step timeout.
function waitFor(emitter, events, check, what) {
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      clearInterval(poll);
      for (const e of events) emitter.off(e, probe);
    };
    const probe = () => {
      let ok = false;
      try {
        ok = check();
      } catch (err) {
        done();
        reject(err);
        return;
      }
      if (ok) {
        done();
        resolve();
      }
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`timed out waiting for ${what}`));
    }, stepTimeout);
    const poll = setInterval(probe, 100);
    for (const e of events) emitter.on(e, probe);
    probe();
  });
}

// register creates an account as a client does: ask, then answer the
// registration-token stage with the node's claim code.
async function register(baseUrl, username, password, token) {
  const anon = sdk.createClient({ baseUrl });
  let session;
  try {
    await anon.registerRequest({ username, password });
    throw new Error("registration was not protected by user-interactive auth");
  } catch (err) {
    if (err.httpStatus !== 401 || !err.data?.session) throw err;
    session = err.data.session;
  }
  const resp = await anon.registerRequest({
    username,
    password,
    initial_device_display_name: "js-sdk",
    auth: { type: "m.login.registration_token", token, session },
  });
  return sdk.createClient({
    baseUrl,
    userId: resp.user_id,
    accessToken: resp.access_token,
    deviceId: resp.device_id,
  });
}

async function started(client, lazyLoadMembers = false) {
  const ready = waitFor(client, ["sync"], () => client.getSyncState() === "PREPARED" || client.getSyncState() === "SYNCING", "the first sync");
  await client.startClient({ initialSyncLimit: 10, lazyLoadMembers });
  await ready;
}

function bodies(room, sender) {
  return room
    .getLiveTimeline()
    .getEvents()
    .filter((e) => e.getType() === "m.room.message" && (!sender || e.getSender() === sender))
    .map((e) => e.getContent().body);
}

async function main() {
  const [urlA, urlB] = [env("PARLEY_A_URL"), env("PARLEY_B_URL")];
  step("register");
  const alice = await register(urlA, "alice", "password-alice-1", env("PARLEY_A_CODE"));
  const bob = await register(urlB, "bob", "password-bob-1", env("PARLEY_B_CODE"));

  step("sync");
  await started(alice);
  await started(bob, true);

  step("create");
  const { room_id: roomId } = await alice.createRoom({ name: "js-sdk room", preset: "private_chat" });
  await waitFor(alice, ["Room"], () => alice.getRoom(roomId) !== null, "the room in alice's sync");
  const before = 25;
  for (let i = 0; i < before; i++) {
    await alice.sendTextMessage(roomId, `before join ${i}`);
  }

  step("invite");
  await alice.invite(roomId, bob.getUserId());
  await waitFor(bob, ["Room", "RoomMember.membership"], () => bob.getRoom(roomId)?.getMyMembership() === "invite", "bob's invite");

  step("join");
  await bob.joinRoom(roomId);
  try {
    await waitFor(bob, ["Room", "RoomMember.membership"], () => bob.getRoom(roomId)?.getMyMembership() === "join", "bob joined in his sync");
  } catch (err) {
    // Say what the node tells a fresh client about the room.
    const res = await fetch(`${urlB}/_matrix/client/v3/sync?timeout=0`, { headers: { Authorization: `Bearer ${bob.getAccessToken()}` } });
    const body = await res.json();
    const where = ["join", "invite", "leave"].filter((k) => body.rooms?.[k]?.[roomId]);
    console.log(`bob's membership in js-sdk: ${bob.getRoom(roomId)?.getMyMembership()}; a fresh /sync lists the room under ${where.join(", ") || "nothing"}`);
    throw err;
  }
  const aliceRoom = alice.getRoom(roomId);
  await waitFor(alice, ["RoomMember.membership"], () => aliceRoom.getMember(bob.getUserId())?.membership === "join", "bob's join on alice's side");

  step("message alice->bob");
  await alice.sendTextMessage(roomId, "hello bob");
  const bobRoom = bob.getRoom(roomId);
  await waitFor(bob, ["Room.timeline"], () => bodies(bobRoom).includes("hello bob"), "alice's message on bob's side");

  step("message bob->alice");
  const { event_id: bobMsg } = await bob.sendTextMessage(roomId, "hello alice");
  await waitFor(alice, ["Room.timeline"], () => bodies(aliceRoom).includes("hello alice"), "bob's message on alice's side");

  step("typing");
  await alice.sendTyping(roomId, true, 20000);
  await waitFor(bob, ["RoomMember.typing"], () => bobRoom.getMember(alice.getUserId())?.typing === true, "alice typing on bob's side");
  await alice.sendTyping(roomId, false);
  await waitFor(bob, ["RoomMember.typing"], () => bobRoom.getMember(alice.getUserId())?.typing === false, "alice no longer typing on bob's side");

  step("receipt");
  const last = aliceRoom.getLiveTimeline().getEvents().find((e) => e.getId() === bobMsg);
  if (!last) throw new Error("bob's message is not in alice's timeline");
  await alice.sendReadReceipt(last);
  await waitFor(bob, ["Room.receipt"], () => bobRoom.getEventReadUpTo(alice.getUserId()) === bobMsg, "alice's read receipt on bob's side");

  step("paginate to m.room.create");
  for (let pages = 0; ; pages++) {
    const events = bobRoom.getLiveTimeline().getEvents();
    if (events.some((e) => e.getType() === "m.room.create")) break;
    if (pages >= 20) throw new Error(`no m.room.create after ${pages} pages (${events.length} events)`);
    const more = await bob.scrollback(bobRoom, 30);
    if (!more) throw new Error("scrollback gave nothing");
    if (bobRoom.oldState.paginationToken === null && !bobRoom.getLiveTimeline().getEvents().some((e) => e.getType() === "m.room.create")) {
      throw new Error(`pagination ended before m.room.create (${bobRoom.getLiveTimeline().getEvents().length} events)`);
    }
  }
  const seen = bodies(bobRoom, alice.getUserId()).filter((b) => b.startsWith("before join "));
  if (seen.length !== before || new Set(seen).size !== before) {
    throw new Error(`bob sees ${seen.length} of alice's ${before} earlier messages (${new Set(seen).size} distinct)`);
  }
  for (let i = 0; i < before; i++) {
    if (seen[i] !== `before join ${i}`) throw new Error(`earlier messages out of order at ${i}: ${seen[i]}`);
  }

  step("lazy-loaded members");
  // Bob's client loaded members lazily: alice, who spoke, is known with
  // her membership, and the room's summary counts both members.
  if (bobRoom.getMember(alice.getUserId())?.membership !== "join") {
    throw new Error("alice is not a joined member in bob's lazy-loaded room");
  }
  await bobRoom.loadMembersIfNeeded();
  const joined = bobRoom.getJoinedMembers().map((m) => m.userId).sort();
  if (joined.length !== 2 || !joined.includes(alice.getUserId()) || !joined.includes(bob.getUserId())) {
    throw new Error(`bob's room lists joined members ${joined}`);
  }

  step("public room directory");
  const server = alice.getUserId().split(":")[1];
  const { room_id: lobbyId } = await alice.createRoom({
    name: "js-sdk lobby", preset: "public_chat", visibility: "public", room_alias_name: "jslobby",
  });
  await alice.sendTextMessage(lobbyId, "welcome to the lobby");
  const deadline = Date.now() + stepTimeout;
  for (;;) {
    const list = await bob.publicRooms({ limit: 10 });
    const entry = list.chunk.find((r) => r.room_id === lobbyId);
    if (entry) {
      if (entry.name !== "js-sdk lobby" || entry.canonical_alias !== `#jslobby:${server}` || entry.num_joined_members !== 1) {
        throw new Error(`the lobby's directory entry: ${JSON.stringify(entry)}`);
      }
      break;
    }
    if (Date.now() > deadline) throw new Error("the lobby never appeared in bob's directory");
    await new Promise((r) => setTimeout(r, 250));
  }

  step("join by alias");
  const lobby = await bob.joinRoom(`#jslobby:${server}`);
  if (lobby.roomId !== lobbyId) throw new Error(`joining the alias gave ${lobby.roomId}, want ${lobbyId}`);
  // The welcome came before the join: bob's client pages back to it,
  // once bob's node can read it (alice's node hands the room's keys over
  // just after the join; a client keeps the first copy of an event).
  await waitFor(bob, ["Room"], () => bob.getRoom(lobbyId) !== null, "the lobby in bob's sync");
  for (const until = Date.now() + stepTimeout; ; ) {
    const res = await fetch(`${urlB}/_matrix/client/v3/rooms/${encodeURIComponent(lobbyId)}/messages?dir=b&limit=50`, {
      headers: { Authorization: `Bearer ${bob.getAccessToken()}` },
    });
    const page = await res.json();
    if (page.chunk?.some((e) => e.type === "m.room.message" && e.content?.body === "welcome to the lobby")) break;
    if (Date.now() > until) throw new Error("bob's node never read the lobby's welcome");
    await new Promise((r) => setTimeout(r, 100));
  }
  const lobbyRoom = bob.getRoom(lobbyId);
  for (let pages = 0; !bodies(lobbyRoom).includes("welcome to the lobby"); pages++) {
    if (pages >= 10) {
      const seen = lobbyRoom.getLiveTimeline().getEvents().map((e) => `${e.getType()}/${e.getId()}`);
      throw new Error(`no welcome after ${pages} pages: ${seen.join(" ")}`);
    }
    await bob.scrollback(lobbyRoom, 30);
    if (lobbyRoom.getLiveTimeline().getEvents().some((e) => e.getType() === "m.room.create") && !bodies(lobbyRoom).includes("welcome to the lobby")) {
      throw new Error("paged back to the lobby's creation without its welcome");
    }
  }

  step("done");
  alice.stopClient();
  bob.stopClient();
}

main().then(
  () => process.exit(0),
  (err) => {
    console.log(`FAIL ${current}: ${err?.stack || err}`);
    process.exit(1);
  },
);
