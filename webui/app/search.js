// Search: the box in the sidebar asks the node (POST /search) for
// messages across the user's rooms, or within the open one; results show
// the room, the sender and a snippet with the matched words marked, and a
// click opens the room at the message.
import { api } from "./api.js";
import { $, h, errText, openDialog, fullFmt } from "./dom.js";
import { S } from "./state.js";
import { go } from "./router.js";

const PAGE = 20;
const SNIPPET = 160; // characters of a message shown around its first match

// searchDialog shows the results for term; roomId limits them to one room.
export function searchDialog(term, roomId = "") {
  openDialog("Search", (body) => {
    const input = h("input", { id: "search-term", type: "search", name: "q", maxlength: 500, "aria-label": "Search messages", autofocus: true });
    input.value = term;
    const scope = h("select", { id: "search-scope", "aria-label": "Where to search" },
      h("option", { value: "" }, "All rooms"),
      roomId && S.rooms.get(roomId) ? h("option", { value: roomId, selected: true }, "This room: " + S.rooms.get(roomId).name()) : null);
    scope.value = roomId && S.rooms.get(roomId) ? roomId : "";
    const order = h("select", { id: "search-order", "aria-label": "Order" }, h("option", { value: "rank" }, "Best match"), h("option", { value: "recent" }, "Newest first"));
    const status = h("p", { class: "muted", role: "status" });
    const list = h("ol", { class: "search-results" });
    const more = h("button", { type: "button", class: "secondary small", hidden: true }, "More results");
    const form = h("form", { class: "search-form-dlg", role: "search" }, input, h("div", { class: "search-opts" }, scope, order, h("button", { type: "submit", class: "small" }, "Search")));
    let next = "", asked = null;
    const run = async (append) => {
      const q = input.value.trim();
      if (!q) {
        status.textContent = "Type a word to look for.";
        list.replaceChildren();
        more.hidden = true;
        return;
      }
      const filter = { limit: PAGE };
      if (scope.value) filter.rooms = [scope.value];
      const req = { search_categories: { room_events: {
        search_term: q, keys: ["content.body"], order_by: order.value, filter,
        event_context: { before_limit: 0, after_limit: 0, include_profile: true },
      } } };
      const key = {};
      asked = key;
      status.textContent = "Searching…";
      more.hidden = true;
      try {
        const res = await api.search(req, append ? next : undefined);
        if (asked !== key) return;
        const re = res.search_categories?.room_events || {};
        const words = (re.highlights || []).concat(q.split(/\s+/)).filter(Boolean);
        if (!append) list.replaceChildren();
        list.append(...(re.results || []).map((x) => result(x, words)));
        next = re.next_batch || "";
        more.hidden = !next;
        const shown = list.children.length;
        status.textContent = shown ? (re.count ? `${shown} of ${re.count} messages` : `${shown} messages`) : "No messages found.";
      } catch (e) {
        if (asked === key) status.textContent = e.status === 404 ? "This node cannot search yet." : errText(e);
      }
    };
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      run(false);
    });
    scope.addEventListener("change", () => run(false));
    order.addEventListener("change", () => run(false));
    more.addEventListener("click", () => run(true));
    body.append(form, status, list, more);
    run(false);
  });
}

function result(x, words) {
  const ev = x.result || {};
  const r = S.rooms.get(ev.room_id);
  const prof = x.context?.profile_info?.[ev.sender];
  const who = prof?.displayname || (r ? r.displayName(ev.sender) : ev.sender);
  const text = typeof ev.content?.body === "string" ? ev.content.body : "";
  const ts = ev.origin_server_ts;
  return h("li", {}, h("button", { type: "button", class: "search-hit", dataset: { event: ev.event_id || "", room: ev.room_id || "" },
    onclick: (e) => {
      e.currentTarget.closest("dialog")?.close();
      openAt(ev.room_id, ev.event_id);
    } },
  h("span", { class: "hit-head" }, h("span", { class: "hit-room" }, r ? r.name() : ev.room_id), ts ? h("time", { class: "muted", datetime: new Date(ts).toISOString() }, fullFmt.format(ts)) : null),
  h("span", { class: "hit-sender" }, who),
  h("span", { class: "hit-snippet" }, snippet(text, words))));
}

// snippet is the part of text around its first match, with every match
// in a <mark> (built as DOM nodes: the text is never read as HTML).
export function snippet(text, words) {
  const terms = [...new Set(words.map((w) => w.toLowerCase()).filter((w) => w.length > 0))].sort((a, b) => b.length - a.length);
  const esc = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const re = terms.length ? new RegExp(terms.map(esc).join("|"), "giu") : null;
  let start = 0;
  const first = re ? text.search(re) : -1;
  const lead = Math.floor(SNIPPET / 3); // characters kept before the first match
  if (first > lead) start = text.lastIndexOf(" ", first - lead) + 1 || first - lead;
  let part = text.slice(start, start + SNIPPET);
  const out = [];
  if (start > 0) out.push("…");
  if (start + SNIPPET < text.length) part += "…";
  if (!re) return [...out, part];
  let at = 0;
  for (const m of part.matchAll(re)) {
    if (m.index > at) out.push(part.slice(at, m.index));
    out.push(h("mark", {}, m[0]));
    at = m.index + m[0].length;
  }
  out.push(part.slice(at));
  return out;
}

// openAt opens a room and brings the message into view once the timeline
// shows it (the last 50 messages are there at once; an older one is
// reached by scrolling back, which the timeline does when scrolled up).
export function openAt(roomId, eventId) {
  if (!S.rooms.has(roomId)) return;
  go("#/room/" + encodeURIComponent(roomId));
  const tl = $("timeline");
  let tries = 0;
  const look = () => {
    const el = tl.querySelector(`[data-id="${CSS.escape(eventId)}"]`);
    if (el) {
      el.scrollIntoView({ block: "center" });
      el.classList.add("flash");
      setTimeout(() => el.classList.remove("flash"), 2500);
      return;
    }
    if (S.current !== roomId || ++tries > 40) return;
    // Not loaded yet: scroll to the top, which loads older messages.
    if (tries % 4 === 0) {
      tl.scrollTop = 0;
      tl.dispatchEvent(new Event("scroll"));
    }
    setTimeout(look, 250);
  };
  setTimeout(look, 0);
}

// wireSearch hooks the sidebar's search box up.
export function wireSearch() {
  const form = $("search-form");
  if (!form) return;
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = $("search-input").value.trim();
    if (q) searchDialog(q, S.current || "");
  });
}
