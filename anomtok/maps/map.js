// anomtok's interactive token map: run once when the Bokeh document is ready (anomtok/maps/html.py).
// Bokeh passes the models by name: src (the points), text, bytes, offsets (the vocabulary blobs),
// hi (the highlighted points), mapper, plot, select, search, status, legend, head, and facts (JSON).
// Every text that comes from a token is put on the page as text (escape()), never as markup.
"use strict";
const F = JSON.parse(facts);
const col = (s, name) => s.data[name];
const words = new TextDecoder("utf-8").decode(col(text, "text")).split("\n"); // display form, by token id
const blob = col(bytes, "bytes");
const off = col(offsets, "offsets");
const esc = (s) =>
  String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const fmt = (x) => Number(x).toLocaleString("en-US");
const VIRIDIS = [
  "#440154", "#482475", "#414487", "#355f8d", "#2a788e", "#21918c",
  "#22a884", "#44bf70", "#7ad151", "#bddf26", "#fde725",
];
const CODE = { kind: "kind", script: "script", japanese: "ja" };
let view = "score";
const TYPED = [Float32Array, Float64Array, Int32Array, Uint32Array, Int16Array, Uint16Array, Int8Array, Uint8Array];
const like = (a, n) => new (TYPED.find((K) => a instanceof K) || Array)(n);

function hexOf(id) {
  const out = [];
  for (let i = off[id]; i < off[id + 1]; i++) out.push(blob[i].toString(16).padStart(2, "0"));
  return out.join(" ") || "(none)";
}

function hover(field, index) {
  // the text of one tooltip field of point `index` (Bokeh escapes what this returns)
  const d = src.data;
  const id = d.id[index];
  if (field === "token") return words[id] === "" ? "(empty)" : words[id];
  if (field === "bytes") return hexOf(id);
  if (field === "flagged") return d.flag[index] ? "yes" : "no";
  const v = F.views[field === "ja" ? "japanese" : field];
  return v.names[d[field][index]];
}

function order(key) {
  // draw order: a permutation of the rows (the last drawn is on top)
  const d = src.data;
  const n = d.id.length;
  const idx = new Uint32Array(n);
  for (let i = 0; i < n; i++) idx[i] = i;
  const s = d.score;
  const sc = (i) => (Number.isFinite(s[i]) ? s[i] : -Infinity);
  if (key === "score") return idx.sort((a, b) => sc(a) - sc(b) || d.id[a] - d.id[b]);
  const v = F.views[key];
  const code = d[CODE[key]];
  // grey classes first, then the classes from the largest to the rarest (rare ones on top)
  const weight = v.counts.map((c, k) => (v.grey[k] ? -1e12 : -c));
  return idx.sort((a, b) => weight[code[a]] - weight[code[b]] || sc(a) - sc(b) || d.id[a] - d.id[b]);
}

function colour(key) {
  view = key;
  const perm = order(key);
  const d = src.data;
  const fresh = {};
  for (const name of Object.keys(d)) {
    const old = d[name];
    const out = like(old, old.length);
    for (let i = 0; i < perm.length; i++) out[i] = old[perm[i]];
    fresh[name] = out;
  }
  const n = perm.length;
  const c = new Float32Array(n);
  const sz = new Float32Array(n);
  if (key === "score") {
    for (let i = 0; i < n; i++) {
      c[i] = fresh.score[i];
      sz[i] = fresh.flag[i] ? F.size * 1.5 : F.size;
    }
    mapper.setv({ palette: VIRIDIS, low: F.score_low, high: F.score_high });
  } else {
    const v = F.views[key];
    const code = fresh[CODE[key]];
    for (let i = 0; i < n; i++) {
      c[i] = code[i];
      sz[i] = v.grey[code[i]] ? F.size : F.size * 1.8;
    }
    mapper.setv({ palette: v.colors, low: -0.5, high: v.colors.length - 0.5 });
  }
  fresh.c = c;
  fresh.sz = sz;
  src.data = fresh;
  drawLegend();
}

function drawLegend() {
  const rows = [];
  if (view === "score") {
    rows.push(`<b>score</b> (cosine to the reference mean)<br>`);
    const stops = VIRIDIS.map((c) => `<span style="display:inline-block;width:14px;height:12px;background:${c}"></span>`);
    rows.push(`${F.score_low.toFixed(3)} ${stops.join("")} ${F.score_high.toFixed(3)}`);
    rows.push(`<br>larger dots: the ${fmt(F.flagged)} flagged tokens`);
  } else {
    const v = F.views[view];
    rows.push(`<b>${esc(view)}</b> (counts of the ${fmt(F.points)} points)`);
    let grey = 0;
    const greyNames = [];
    v.names.forEach((name, k) => {
      if (v.counts[k] === 0) return;
      if (v.grey[k]) {
        grey += v.counts[k];
        greyNames.push(name);
        return;
      }
      const sw = `<span style="display:inline-block;width:10px;height:10px;background:${v.colors[k]}"></span>`;
      rows.push(`${sw} ${esc(name)} (${fmt(v.counts[k])})`);
    });
    if (grey) {
      const label = v.grey_label || greyNames.join(", ");
      rows.push(`<span style="display:inline-block;width:10px;height:10px;background:#d0d0d0"></span> ${esc(label)} (${fmt(grey)})`);
    }
  }
  legend.text = rows.join("<br>");
}

function zoomTo(xs, ys) {
  const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
  const span = Math.max(x1 - x0, y1 - y0, (F.extent || 1) / 20);
  const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
  plot.x_range.setv({ start: cx - span * 0.6, end: cx + span * 0.6 });
  plot.y_range.setv({ start: cy - span * 0.6, end: cy + span * 0.6 });
}

function find(query) {
  // ids of the tokens a query names: an id, else the exact display text, else the tokens containing it
  const q = String(query);
  const t = q.trim();
  if (/^[0-9]+$/.test(t)) return { how: "id", ids: Number(t) < words.length ? [Number(t)] : [] };
  const exact = [];
  for (let i = 0; i < words.length; i++) if (words[i] === q || (t !== q && words[i] === t)) exact.push(i);
  if (exact.length) return { how: "exact", ids: exact };
  const low = t.toLowerCase();
  const part = [];
  if (low) for (let i = 0; i < words.length; i++) if (words[i].toLowerCase().includes(low)) part.push(i);
  return { how: "containing", ids: part };
}

function search(query) {
  if (!String(query).trim()) {
    hi.data = { x: [], y: [], id: [] };
    status.text = "";
    return [];
  }
  const { how, ids } = find(query);
  const d = src.data;
  const row = new Map();
  for (let i = 0; i < d.id.length; i++) row.set(d.id[i], i);
  const shown = ids.filter((id) => row.has(id)).slice(0, 5000);
  const xs = shown.map((id) => d.x[row.get(id)]);
  const ys = shown.map((id) => d.y[row.get(id)]);
  hi.data = { x: xs, y: ys, id: shown };
  if (shown.length && shown.length <= 50) zoomTo(xs, ys);
  const off_map = ids.length - ids.filter((id) => row.has(id)).length;
  let msg;
  if (!ids.length) msg = `no token ${how === "id" ? "with id" : "matches"} “${esc(query)}”`;
  else if (ids.length === 1) {
    const id = ids[0];
    msg = `id ${id}: “${esc(words[id])}”` + (off_map ? " (not on the map: not sampled or no embedding)" : " (circled)");
  } else {
    msg = `${fmt(ids.length)} tokens ${how === "exact" ? "with this text" : "containing it"}; ${fmt(shown.length)} circled`;
    if (off_map) msg += `, ${fmt(off_map)} not on the map`;
  }
  status.text = msg;
  return shown;
}

const xs = src.data.x, ys = src.data.y;
let lo = Infinity, hiX = -Infinity;
for (let i = 0; i < xs.length; i++) { lo = Math.min(lo, xs[i], ys[i]); hiX = Math.max(hiX, xs[i], ys[i]); }
F.extent = Number.isFinite(hiX - lo) ? hiX - lo : 1;
const u = F.umap;
head.text =
  `${esc(F.title || "token map")}: ${esc(F.description || `${fmt(F.points)} of ${fmt(F.vocab)} tokens`)}` +
  `<br><span style="font-weight:normal;font-size:12px">` +
  (u.metric == null
    ? ""
    : `UMAP of the input embedding (${esc(u.metric)}, n_neighbors=${esc(u.n_neighbors)}, ` +
      `min_dist=${esc(u.min_dist)}, seed=${esc(u.seed)}). `) +
  `Hover a dot for its token; wheel to zoom, drag to pan; search by text or id.</span>`;
window.anomtokMap = { hover, colour, search, find, points: () => src.data.id.length, vocab: F.vocab, facts: F };
colour(select.value || "score");
