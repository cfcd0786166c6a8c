// A small QR Code encoder: byte mode, error correction L or M, versions
// 1 to 40, automatic mask choice. Written for parley's invite links and
// user IDs; see qrSelfCheck() for a decoder-side round trip.

const ECC = {
  // error correction codewords per block, indexed by version
  L: [-1, 7, 10, 15, 20, 26, 18, 20, 24, 30, 18, 20, 24, 26, 30, 22, 24, 28, 30, 28, 28, 28, 28, 30, 30, 26, 28, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30],
  M: [-1, 10, 16, 26, 18, 24, 16, 18, 22, 22, 26, 30, 22, 22, 24, 24, 28, 28, 26, 26, 26, 26, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28],
};
const BLOCKS = {
  L: [-1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 4, 4, 6, 6, 6, 6, 7, 8, 8, 9, 9, 10, 12, 12, 12, 13, 14, 15, 16, 17, 18, 19, 19, 20, 21, 22, 24, 25],
  M: [-1, 1, 1, 1, 2, 2, 4, 4, 4, 5, 5, 5, 8, 9, 9, 10, 10, 11, 13, 14, 16, 17, 17, 18, 20, 21, 23, 25, 26, 28, 29, 31, 33, 35, 37, 38, 40, 43, 45, 47, 49],
};
const FORMAT_ECL = { L: 1, M: 0 };

function rawDataModules(ver) {
  let n = (16 * ver + 128) * ver + 64;
  if (ver >= 2) {
    const align = Math.floor(ver / 7) + 2;
    n -= (25 * align - 10) * align - 55;
    if (ver >= 7) n -= 36;
  }
  return n;
}

function dataCodewords(ver, ecl) {
  return Math.floor(rawDataModules(ver) / 8) - ECC[ecl][ver] * BLOCKS[ecl][ver];
}

function alignmentPositions(ver) {
  if (ver === 1) return [];
  const size = ver * 4 + 17;
  const n = Math.floor(ver / 7) + 2;
  const step = Math.floor((ver * 8 + n * 3 + 5) / (n * 4 - 4)) * 2;
  const out = [6];
  for (let pos = size - 7; out.length < n; pos -= step) out.splice(1, 0, pos);
  return out;
}

// GF(2^8) with the QR polynomial 0x11D.
function gfMul(x, y) {
  let z = 0;
  for (let i = 7; i >= 0; i--) {
    z = (z << 1) ^ ((z >>> 7) * 0x11d);
    z ^= ((y >>> i) & 1) * x;
  }
  return z & 0xff;
}

function rsDivisor(degree) {
  const r = new Array(degree).fill(0);
  r[degree - 1] = 1;
  let root = 1;
  for (let i = 0; i < degree; i++) {
    for (let j = 0; j < degree; j++) {
      r[j] = gfMul(r[j], root);
      if (j + 1 < degree) r[j] ^= r[j + 1];
    }
    root = gfMul(root, 2);
  }
  return r;
}

function rsRemainder(data, divisor) {
  const r = new Array(divisor.length).fill(0);
  for (const b of data) {
    const f = b ^ r.shift();
    r.push(0);
    for (let i = 0; i < divisor.length; i++) r[i] ^= gfMul(divisor[i], f);
  }
  return r;
}

function bchFormat(ecl, mask) {
  const data = (FORMAT_ECL[ecl] << 3) | mask;
  let rem = data;
  for (let i = 0; i < 10; i++) rem = (rem << 1) ^ ((rem >>> 9) * 0x537);
  return ((data << 10) | rem) ^ 0x5412;
}

function bchVersion(ver) {
  let rem = ver;
  for (let i = 0; i < 12; i++) rem = (rem << 1) ^ ((rem >>> 11) * 0x1f25);
  return (ver << 12) | rem;
}

const MASKS = [
  (x, y) => (x + y) % 2 === 0,
  (x, y) => y % 2 === 0,
  (x, y) => x % 3 === 0,
  (x, y) => (x + y) % 3 === 0,
  (x, y) => (Math.floor(x / 3) + Math.floor(y / 2)) % 2 === 0,
  (x, y) => ((x * y) % 2) + ((x * y) % 3) === 0,
  (x, y) => (((x * y) % 2) + ((x * y) % 3)) % 2 === 0,
  (x, y) => (((x + y) % 2) + ((x * y) % 3)) % 2 === 0,
];

class Matrix {
  constructor(ver) {
    this.ver = ver;
    this.size = ver * 4 + 17;
    this.mod = Array.from({ length: this.size }, () => new Array(this.size).fill(false));
    this.fn = Array.from({ length: this.size }, () => new Array(this.size).fill(false));
  }
  setFn(x, y, dark) {
    this.mod[y][x] = dark;
    this.fn[y][x] = true;
  }
  drawFunctionPatterns() {
    const s = this.size;
    for (let i = 0; i < s; i++) {
      this.setFn(6, i, i % 2 === 0);
      this.setFn(i, 6, i % 2 === 0);
    }
    for (const [cx, cy] of [[3, 3], [s - 4, 3], [3, s - 4]]) {
      for (let dy = -4; dy <= 4; dy++) {
        for (let dx = -4; dx <= 4; dx++) {
          const d = Math.max(Math.abs(dx), Math.abs(dy));
          const x = cx + dx, y = cy + dy;
          if (x >= 0 && x < s && y >= 0 && y < s) this.setFn(x, y, d !== 2 && d !== 4);
        }
      }
    }
    const pos = alignmentPositions(this.ver);
    const n = pos.length;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        if ((i === 0 && j === 0) || (i === 0 && j === n - 1) || (i === n - 1 && j === 0)) continue;
        for (let dy = -2; dy <= 2; dy++) {
          for (let dx = -2; dx <= 2; dx++) {
            this.setFn(pos[i] + dx, pos[j] + dy, Math.max(Math.abs(dx), Math.abs(dy)) !== 1);
          }
        }
      }
    }
    this.drawFormat("M", 0); // reserve; overwritten once the mask is chosen
    if (this.ver >= 7) {
      const bits = bchVersion(this.ver);
      for (let i = 0; i < 18; i++) {
        const dark = ((bits >>> i) & 1) === 1;
        const a = s - 11 + (i % 3), b = Math.floor(i / 3);
        this.setFn(a, b, dark);
        this.setFn(b, a, dark);
      }
    }
  }
  drawFormat(ecl, mask) {
    const bits = bchFormat(ecl, mask);
    const bit = (i) => ((bits >>> i) & 1) === 1;
    const s = this.size;
    for (let i = 0; i <= 5; i++) this.setFn(8, i, bit(i));
    this.setFn(8, 7, bit(6));
    this.setFn(8, 8, bit(7));
    this.setFn(7, 8, bit(8));
    for (let i = 9; i < 15; i++) this.setFn(14 - i, 8, bit(i));
    for (let i = 0; i < 8; i++) this.setFn(s - 1 - i, 8, bit(i));
    for (let i = 8; i < 15; i++) this.setFn(8, s - 15 + i, bit(i));
    this.setFn(8, s - 8, true);
  }
  // zigzag visits the data modules in placement order.
  *zigzag() {
    const s = this.size;
    for (let right = s - 1; right >= 1; right -= 2) {
      if (right === 6) right = 5;
      for (let v = 0; v < s; v++) {
        for (let j = 0; j < 2; j++) {
          const x = right - j;
          const up = ((right + 1) & 2) === 0;
          const y = up ? s - 1 - v : v;
          if (!this.fn[y][x]) yield [x, y];
        }
      }
    }
  }
  placeData(codewords) {
    let i = 0;
    for (const [x, y] of this.zigzag()) {
      if (i < codewords.length * 8) this.mod[y][x] = ((codewords[i >>> 3] >>> (7 - (i & 7))) & 1) === 1;
      i++;
    }
  }
  applyMask(m) {
    const f = MASKS[m];
    for (let y = 0; y < this.size; y++) {
      for (let x = 0; x < this.size; x++) {
        if (!this.fn[y][x] && f(x, y)) this.mod[y][x] = !this.mod[y][x];
      }
    }
  }
  penalty() {
    const s = this.size, m = this.mod;
    let p = 0;
    const line = (get) => {
      let run = 1;
      for (let i = 1; i <= s; i++) {
        if (i < s && get(i) === get(i - 1)) run++;
        else {
          if (run >= 5) p += 3 + run - 5;
          run = 1;
        }
      }
      const pat = [true, false, true, true, true, false, true];
      for (let i = 0; i + 7 <= s; i++) {
        let ok = true;
        for (let k = 0; k < 7 && ok; k++) ok = get(i + k) === pat[k];
        if (!ok) continue;
        const lightBefore = [1, 2, 3, 4].every((k) => i - k < 0 || !get(i - k));
        const lightAfter = [0, 1, 2, 3].every((k) => i + 7 + k >= s || !get(i + 7 + k));
        if (lightBefore || lightAfter) p += 40;
      }
    };
    for (let y = 0; y < s; y++) line((i) => m[y][i]);
    for (let x = 0; x < s; x++) line((i) => m[i][x]);
    let dark = 0;
    for (let y = 0; y < s; y++) {
      for (let x = 0; x < s; x++) {
        if (m[y][x]) dark++;
        if (x + 1 < s && y + 1 < s && m[y][x] === m[y][x + 1] && m[y][x] === m[y + 1][x] && m[y][x] === m[y + 1][x + 1]) p += 3;
      }
    }
    const total = s * s;
    p += (Math.ceil(Math.abs(dark * 20 - total * 10) / total) - 1) * 10;
    return p;
  }
}

function interleave(data, ver, ecl) {
  const nBlocks = BLOCKS[ecl][ver], eccLen = ECC[ecl][ver];
  const raw = Math.floor(rawDataModules(ver) / 8);
  const nShort = nBlocks - (raw % nBlocks);
  const shortLen = Math.floor(raw / nBlocks);
  const div = rsDivisor(eccLen);
  const blocks = [];
  for (let i = 0, k = 0; i < nBlocks; i++) {
    const dat = data.slice(k, k + shortLen - eccLen + (i < nShort ? 0 : 1));
    k += dat.length;
    const ecc = rsRemainder(dat, div);
    if (i < nShort) dat.push(0);
    blocks.push(dat.concat(ecc));
  }
  const out = [];
  for (let i = 0; i < blocks[0].length; i++) {
    for (let j = 0; j < blocks.length; j++) {
      if (i !== shortLen - eccLen || j >= nShort) out.push(blocks[j][i]);
    }
  }
  return out;
}

/**
 * encodeQR returns {size, version, ecl, mask, modules} where modules[y][x]
 * is true for a dark module. text is encoded as UTF-8 bytes.
 */
export function encodeQR(text, { ecl = "M", minVersion = 1, maxVersion = 40 } = {}) {
  const bytes = typeof text === "string" ? Array.from(new TextEncoder().encode(text)) : Array.from(text);
  let ver = minVersion;
  for (; ver <= maxVersion; ver++) {
    const countBits = ver <= 9 ? 8 : 16;
    if (4 + countBits + bytes.length * 8 <= dataCodewords(ver, ecl) * 8) break;
  }
  if (ver > maxVersion) throw new Error("too much data for a QR code");
  const cap = dataCodewords(ver, ecl) * 8;
  const bits = [];
  const put = (v, n) => { for (let i = n - 1; i >= 0; i--) bits.push((v >>> i) & 1); };
  put(4, 4);
  put(bytes.length, ver <= 9 ? 8 : 16);
  for (const b of bytes) put(b, 8);
  put(0, Math.min(4, cap - bits.length));
  put(0, (8 - (bits.length % 8)) % 8);
  for (let pad = 0xec; bits.length < cap; pad ^= 0xec ^ 0x11) put(pad, 8);
  const data = [];
  for (let i = 0; i < bits.length; i += 8) data.push(bits.slice(i, i + 8).reduce((a, b) => (a << 1) | b, 0));
  const codewords = interleave(data, ver, ecl);

  let best = null;
  for (let mask = 0; mask < 8; mask++) {
    const m = new Matrix(ver);
    m.drawFunctionPatterns();
    m.placeData(codewords);
    m.applyMask(mask);
    m.drawFormat(ecl, mask);
    const p = m.penalty();
    if (!best || p < best.p) best = { p, m, mask };
  }
  return { size: best.m.size, version: ver, ecl, mask: best.mask, modules: best.m.mod };
}

/** qrSVG renders a code as an inline SVG element with a 4-module quiet zone. */
export function qrSVG(text, { ecl = "M", label = "QR code" } = {}) {
  const q = encodeQR(text, { ecl });
  const n = q.size + 8;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${n} ${n}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  svg.setAttribute("shape-rendering", "crispEdges");
  svg.classList.add("qr");
  const bg = document.createElementNS(ns, "rect");
  bg.setAttribute("width", n);
  bg.setAttribute("height", n);
  bg.setAttribute("fill", "#fff");
  svg.append(bg);
  let d = "";
  for (let y = 0; y < q.size; y++) {
    for (let x = 0; x < q.size; x++) if (q.modules[y][x]) d += `M${x + 4} ${y + 4}h1v1h-1z`;
  }
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", d);
  path.setAttribute("fill", "#000");
  svg.append(path);
  svg.dataset.version = q.version;
  return svg;
}

// ---- self-check: read a code back the way a scanner would ----

function readFormat(mod, size) {
  let bits = 0;
  const get = (x, y) => (mod[y][x] ? 1 : 0);
  const a = [];
  for (let i = 0; i <= 5; i++) a.push(get(8, i));
  a.push(get(8, 7), get(8, 8), get(7, 8));
  for (let i = 9; i < 15; i++) a.push(get(14 - i, 8));
  a.forEach((b, i) => (bits |= b << i));
  let bits2 = 0;
  for (let i = 0; i < 8; i++) bits2 |= get(size - 1 - i, 8) << i;
  for (let i = 8; i < 15; i++) bits2 |= get(8, size - 15 + i) << i;
  if (bits !== bits2) throw new Error("format copies differ");
  for (const ecl of ["L", "M"]) for (let m = 0; m < 8; m++) if (bchFormat(ecl, m) === bits) return { ecl, mask: m };
  throw new Error("format bits invalid");
}

function syndromesZero(block, eccLen) {
  // A valid RS codeword evaluates to zero at alpha^0 .. alpha^(eccLen-1).
  let alpha = 1;
  for (let i = 0; i < eccLen; i++) {
    let v = 0;
    for (const c of block) v = gfMul(v, alpha) ^ c;
    if (v !== 0) return false;
    alpha = gfMul(alpha, 2);
  }
  return true;
}

/** decodeQR reads modules produced by encodeQR back into bytes. */
export function decodeQR(modules) {
  const size = modules.length;
  const ver = (size - 17) / 4;
  const { ecl, mask } = readFormat(modules, size);
  const m = new Matrix(ver);
  m.drawFunctionPatterns();
  const bits = [];
  for (const [x, y] of m.zigzag()) bits.push(modules[y][x] !== MASKS[mask](x, y) ? 1 : 0);
  const raw = Math.floor(rawDataModules(ver) / 8);
  const cw = [];
  for (let i = 0; i < raw; i++) cw.push(bits.slice(i * 8, i * 8 + 8).reduce((a, b) => (a << 1) | b, 0));
  const nBlocks = BLOCKS[ecl][ver], eccLen = ECC[ecl][ver];
  const nShort = nBlocks - (raw % nBlocks), shortLen = Math.floor(raw / nBlocks);
  const blocks = Array.from({ length: nBlocks }, () => new Array(shortLen + 1).fill(0));
  let k = 0;
  for (let i = 0; i <= shortLen; i++) {
    for (let j = 0; j < nBlocks; j++) {
      if (i !== shortLen - eccLen || j >= nShort) blocks[j][i] = cw[k++];
    }
  }
  const data = [];
  for (let j = 0; j < nBlocks; j++) {
    const b = blocks[j].slice();
    if (j < nShort) b.splice(shortLen - eccLen, 1); // the placeholder
    const dataLen = b.length - eccLen;
    if (!syndromesZero(b, eccLen)) throw new Error(`block ${j} fails its error check`);
    data.push(...b.slice(0, dataLen));
  }
  const bitsD = data.flatMap((b) => [7, 6, 5, 4, 3, 2, 1, 0].map((i) => (b >>> i) & 1));
  let p = 0;
  const take = (n) => { let v = 0; for (let i = 0; i < n; i++) v = (v << 1) | bitsD[p++]; return v; };
  if (take(4) !== 4) throw new Error("not byte mode");
  const len = take(ver <= 9 ? 8 : 16);
  const out = [];
  for (let i = 0; i < len; i++) out.push(take(8));
  return { version: ver, ecl, mask, bytes: new Uint8Array(out) };
}

/**
 * qrSelfCheck encodes sample texts (up to ~600-character links) and reads
 * each back: format bits, masks, block interleaving and Reed-Solomon
 * syndromes. Returns a list of failures (empty when all is well).
 */
export function qrSelfCheck() {
  const failures = [];
  const samples = ["", "A", "@alice:8f3e", "parley:join/" + "x".repeat(120)];
  let long = "http://127.0.0.1:8008/#/join/";
  while (long.length < 640) long += "eyJ2IjoxLCJyb29tIjoiIWFiYyJ9_-";
  for (let n = 20; n <= long.length; n += 37) samples.push(long.slice(0, n));
  for (const ecl of ["L", "M"]) {
    for (const text of samples) {
      try {
        const q = encodeQR(text, { ecl });
        const d = decodeQR(q.modules);
        const got = new TextDecoder().decode(d.bytes);
        if (got !== text) failures.push(`${ecl} v${q.version}: read back ${JSON.stringify(got.slice(0, 20))}`);
        if (d.ecl !== ecl || d.mask !== q.mask) failures.push(`${ecl} v${q.version}: format read back wrong`);
      } catch (e) {
        failures.push(`${ecl} ${text.length} chars: ${e.message}`);
      }
    }
  }
  // A published reference: the Reed-Solomon check bytes of the ISO 18004
  // annex example "01234567" (1-M data codewords).
  const ref = rsRemainder([0x10, 0x20, 0x0c, 0x56, 0x61, 0x80, 0xec, 0x11, 0xec, 0x11, 0xec, 0x11, 0xec, 0x11, 0xec, 0x11], rsDivisor(10));
  if (ref.join(",") !== [0xa5, 0x24, 0xd4, 0xc1, 0xed, 0x36, 0xc7, 0x87, 0x2c, 0x55].join(",")) failures.push("RS reference vector mismatch: " + ref.map((b) => b.toString(16)).join(" "));
  return failures;
}
