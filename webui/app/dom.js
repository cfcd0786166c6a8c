// Small DOM helpers, dialogs, form fields and time formatting.
import { APIError } from "./api.js";

// ---------- small DOM helpers ----------

export const $ = (id) => document.getElementById(id);

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

// kids flattens and drops empty children, for append/replaceChildren.
export const kids = (...list) => list.flat(3).filter((k) => k !== null && k !== undefined && k !== false);

export function toast(msg) {
  const t = h("div", { class: "toast", role: "status" }, msg);
  document.body.append(t);
  setTimeout(() => t.remove(), 2600);
}

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const ta = h("textarea", { "aria-hidden": "true", style: "position:fixed;opacity:0" });
    ta.value = text;
    document.body.append(ta);
    ta.select();
    document.execCommand("copy");
    ta.remove();
  }
  toast("Copied");
}

export function copyRow(value, label) {
  const input = h("input", { readonly: true, "aria-label": label });
  input.value = value;
  input.addEventListener("focus", () => input.select());
  return h("div", { class: "copy-row" }, input, h("button", { type: "button", class: "secondary small", onclick: () => copyText(value), "aria-label": "Copy " + label }, "Copy"));
}

export function errText(e) {
  if (e instanceof APIError) return e.message + (e.errcode ? ` (${e.errcode})` : "");
  if (e?.name === "TypeError") return "Cannot reach this node. Is parley still running?";
  return e?.message || String(e);
}

// openDialog shows a modal <dialog>. Escape closes it (the browser does
// that); the form inside submits on Enter. Returns the dialog element.
export function openDialog(title, build, { onClose } = {}) {
  const dlg = h("dialog", { "aria-label": title });
  const opener = document.activeElement;
  let done = false;
  const finish = () => {
    if (done) return;
    done = true;
    if (dlg.open) dlg.close();
    dlg.remove();
    onClose?.();
    if (opener && opener.isConnected && !document.querySelector("dialog[open]")) opener.focus({ preventScroll: true });
  };
  const close = finish;
  const body = h("div", { class: "dlg" }, h("h2", {}, title));
  dlg.append(body);
  build(body, close, dlg);
  dlg.addEventListener("close", finish);
  document.body.append(dlg);
  dlg.showModal();
  const first = dlg.querySelector("[autofocus]") || dlg.querySelector("input:not([readonly]), textarea, select");
  first?.focus();
  return dlg;
}

export function formDialog(title, fields, submitLabel, onSubmit, { note } = {}) {
  return openDialog(title, (body, close) => {
    const err = h("p", { class: "error", role: "alert" });
    const submit = h("button", { type: "submit" }, submitLabel);
    const form = h("form", {}, note ? h("p", { class: "muted" }, note) : null, ...fields, err,
      h("div", { class: "dlg-actions" }, h("button", { type: "button", class: "secondary", onclick: close }, "Cancel"), submit));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      err.textContent = "";
      submit.disabled = true;
      try {
        await onSubmit(new FormData(form), close);
      } catch (e) {
        err.textContent = errText(e);
      } finally {
        submit.disabled = false;
      }
    });
    body.append(form);
  });
}

export const field = (name, label, attrs = {}) => {
  const id = "f-" + name + "-" + Math.random().toString(36).slice(2, 7);
  const input = attrs.multiline ? h("textarea", { id, name, rows: 3, ...attrs, multiline: null }) : h("input", { id, name, ...attrs });
  if (attrs.value !== undefined) input.value = attrs.value;
  return [h("label", { for: id }, label), input, attrs.note ? h("p", { class: "field-note" }, attrs.note) : null];
};

// ---------- time formatting ----------

export const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dayFmt = new Intl.DateTimeFormat(undefined, { weekday: "long", year: "numeric", month: "long", day: "numeric" });
export const fullFmt = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
export function dayLabel(ts) {
  const d = new Date(ts);
  const today = new Date();
  const yest = new Date(Date.now() - 86400000);
  if (d.toDateString() === today.toDateString()) return "Today";
  if (d.toDateString() === yest.toDateString()) return "Yesterday";
  return dayFmt.format(d);
}
export function relTime(ms) {
  const s = Math.round(ms / 1000);
  if (s < 90) return `${s} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  if (s < 129600) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} days`;
}
