// Media: uploads with progress, and mxc:// URIs read through the
// authenticated download API into blob: URLs the page may show.
import { request, session } from "./api.js";

const MEDIA = "/_matrix/client/v1/media";
const cache = new Map(); // key -> Promise<string> (blob: URL)
const MAX_CACHED = 300;

// parseMxc splits mxc://server/id; null if it is not one.
export function parseMxc(uri) {
  const m = /^mxc:\/\/([^/?#]+)\/([A-Za-z0-9_-]+)$/.exec(uri || "");
  return m ? { server: m[1], id: m[2] } : null;
}

function token() {
  return session.load()?.access_token || "";
}

// mediaURL resolves an mxc URI to a blob: URL of its content (or of a
// thumbnail when size = {width, height, method}), fetched once with the
// access token and kept while the page lives (the oldest dropped past a
// bound). It rejects when the content cannot be had.
export function mediaURL(uri, size) {
  const p = parseMxc(uri);
  if (!p) return Promise.reject(new Error("not a media URI"));
  const key = size ? `${uri}#${size.width}x${size.height}-${size.method || "scale"}` : uri;
  if (cache.has(key)) return cache.get(key);
  const path = size
    ? `${MEDIA}/thumbnail/${encodeURIComponent(p.server)}/${encodeURIComponent(p.id)}?width=${size.width}&height=${size.height}&method=${size.method || "scale"}`
    : `${MEDIA}/download/${encodeURIComponent(p.server)}/${encodeURIComponent(p.id)}`;
  const got = fetch(path, { headers: { Authorization: "Bearer " + token() } }).then(async (res) => {
    if (!res.ok) throw new Error(`media unavailable (HTTP ${res.status})`);
    return URL.createObjectURL(await res.blob());
  });
  got.catch(() => cache.delete(key));
  cache.set(key, got);
  if (cache.size > MAX_CACHED) {
    const [oldest, url] = cache.entries().next().value;
    cache.delete(oldest);
    url.then((u) => URL.revokeObjectURL(u), () => {});
  }
  return got;
}

// upload sends a File or Blob to the node and resolves to its mxc URI.
// onProgress(sent, total) hears of progress; signal cancels.
export function upload(file, { onProgress, signal, filename } = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    const name = filename || file.name || "";
    xhr.open("POST", "/_matrix/media/v3/upload" + (name ? "?filename=" + encodeURIComponent(name) : ""));
    xhr.setRequestHeader("Authorization", "Bearer " + token());
    xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
    if (onProgress) xhr.upload.onprogress = (e) => onProgress(e.loaded, e.total);
    xhr.onload = () => {
      let body = {};
      try {
        body = JSON.parse(xhr.responseText || "{}");
      } catch {
        /* not JSON: reported below */
      }
      if (xhr.status === 200 && body.content_uri) resolve(body.content_uri);
      else reject(new Error(body.error || `upload failed (HTTP ${xhr.status})`));
    };
    xhr.onerror = () => reject(new Error("upload failed: the node did not answer"));
    xhr.onabort = () => reject(new DOMException("upload cancelled", "AbortError"));
    if (signal) signal.addEventListener("abort", () => xhr.abort(), { once: true });
    xhr.send(file);
  });
}

// mediaConfig is the node's upload limit, asked once.
let config = null;
export function mediaConfig() {
  config ??= request("GET", `${MEDIA}/config`).catch(() => ({ "m.upload.size": 100 * 1024 * 1024 }));
  return config;
}
