// The quality page: `testimony quality`'s figures as tables and two plots. The plots are SVG made with
// DOM calls, no library; text is only ever set as text (textContent), never as markup, so a name a
// reviewer wrote cannot run code in this page. Nothing is loaded from anywhere but this workspace.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const SVG = "http://www.w3.org/2000/svg";
const COLOURS = ["#1f6feb", "#c62828", "#2e7d32", "#8e24aa", "#ef6c00", "#00838f", "#5d4037", "#546e7a"];

async function getJson(path) {
  const response = await fetch(path);
  if (response.status === 401) { location.assign("/signin"); return {status: 401, data: {}}; }
  const data = await response.json().catch(() => ({error: response.statusText}));
  return {status: response.status, data};
}

function percent(rate) {
  return rate === null || rate === undefined ? "–" : `${(100 * rate).toFixed(1)}%`;
}

function cell(row, text, numeric) {
  const td = document.createElement(row.parentNode && row.parentNode.tagName === "THEAD" ? "th" : "td");
  td.textContent = text;
  if (numeric) td.className = "num";
  row.appendChild(td);
  return td;
}

// One table: a header row, then a row per entry; `columns` are [title, (entry) => text, numeric].
function fillTable(table, columns, entries) {
  table.replaceChildren();
  const head = table.appendChild(document.createElement("thead")).appendChild(document.createElement("tr"));
  for (const [title, , numeric] of columns) cell(head, title, numeric);
  const body = table.appendChild(document.createElement("tbody"));
  for (const entry of entries) {
    const row = body.appendChild(document.createElement("tr"));
    row.dataset.key = entry.key;
    for (const [title, value, numeric] of columns) cell(row, value(entry), numeric).dataset.column = title;
  }
  table.hidden = entries.length === 0;
}

const FIGURE_COLUMNS = (label) => [
  [label, (e) => e.key], ["Segments", (e) => String(e.segments), true], ["Hours", (e) => e.hours.toFixed(3), true],
  ["Words", (e) => String(e.words), true], ["WER", (e) => percent(e.wer), true], ["CER", (e) => percent(e.cer), true],
];

function entries(group) {
  return Object.entries(group || {}).map(([key, figures]) => ({key, ...figures}));
}

// ---------------------------------------------------------------- plots
function svgElement(name, attributes = {}, parent = null) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  if (parent) parent.appendChild(element);
  return element;
}

function svgText(parent, x, y, text, anchor = "start") {
  const label = svgElement("text", {x, y, "text-anchor": anchor}, parent);
  label.textContent = text;
  return label;
}

function titled(element, text) {
  svgElement("title", {}, element).textContent = text;
  return element;
}

// The plot's frame: axes, and WER ticks from 0 to the highest rate shown.
function frame(width, height, box, top) {
  const svg = svgElement("svg", {viewBox: `0 0 ${width} ${height}`, width, height, role: "img"});
  svgElement("line", {x1: box.left, y1: box.top, x2: box.left, y2: box.bottom, stroke: "#888"}, svg);
  svgElement("line", {x1: box.left, y1: box.bottom, x2: box.right, y2: box.bottom, stroke: "#888"}, svg);
  for (const fraction of [0, 0.5, 1]) {
    const y = box.bottom - fraction * (box.bottom - box.top);
    svgText(svg, box.left - 4, y + 4, percent(fraction * top), "end");
    svgElement("line", {x1: box.left, y1: y, x2: box.right, y2: y, stroke: "#eee"}, svg);
  }
  return svg;
}

function highest(rates) {
  const top = Math.max(0, ...rates.filter((r) => r !== null && r !== undefined));
  return top > 0 ? top * 1.1 : 1;
}

// A line per model: its WER in each month it has checked speech.
function plotOverTime(holder, byModel) {
  const models = Object.keys(byModel);
  const months = [...new Set(models.flatMap((m) => Object.keys(byModel[m])))].sort();
  const width = 680, height = 280, box = {left: 56, top: 16, right: 480, bottom: 240};
  const top = highest(models.flatMap((m) => Object.values(byModel[m]).map((f) => f.wer)));
  const svg = frame(width, height, box, top);
  svg.setAttribute("aria-label", "WER per model by month of the check");
  const step = (box.right - box.left) / Math.max(1, months.length);
  const x = (month) => box.left + step * (months.indexOf(month) + 0.5);
  const y = (rate) => box.bottom - (rate / top) * (box.bottom - box.top);
  months.forEach((month) => svgText(svg, x(month), box.bottom + 16, month, "middle"));
  models.forEach((model, n) => {
    const colour = COLOURS[n % COLOURS.length];
    const series = svgElement("g", {class: "series"}, svg);
    series.dataset.model = model;
    const points = Object.entries(byModel[model]).filter(([, f]) => f.wer !== null);
    svgElement("polyline", {points: points.map(([m, f]) => `${x(m)},${y(f.wer)}`).join(" "), fill: "none",
                            stroke: colour, "stroke-width": 2}, series);
    for (const [month, f] of points) {
      titled(svgElement("circle", {cx: x(month), cy: y(f.wer), r: 4, fill: colour}, series),
             `${model}, ${month}: WER ${percent(f.wer)} over ${f.words} words`);
    }
    svgElement("rect", {x: box.right + 16, y: box.top + n * 18, width: 12, height: 12, fill: colour}, series);
    svgText(series, box.right + 34, box.top + n * 18 + 10, model);
  });
  holder.replaceChildren(svg);
}

// A bar per recording: its WER over all its checked segments.
function plotPerRecording(holder, byRecording) {
  const recordings = Object.entries(byRecording).filter(([, f]) => f.wer !== null);
  const width = 680, height = 280, box = {left: 56, top: 16, right: 664, bottom: 240};
  const top = highest(recordings.map(([, f]) => f.wer));
  const svg = frame(width, height, box, top);
  svg.setAttribute("aria-label", "WER per recording");
  const step = (box.right - box.left) / Math.max(1, recordings.length);
  recordings.forEach(([recording, f], n) => {
    const bar = svgElement("g", {class: "bar"}, svg);
    bar.dataset.recording = recording;
    const h = (f.wer / top) * (box.bottom - box.top);
    titled(svgElement("rect", {x: box.left + step * n + step * 0.15, y: box.bottom - h, width: step * 0.7,
                               height: h, fill: COLOURS[0]}, bar), `${recording}: WER ${percent(f.wer)}`);
    svgText(bar, box.left + step * (n + 0.5), box.bottom + 16, recording, "middle");
  });
  holder.replaceChildren(svg);
}

// ---------------------------------------------------------------- the page
function show(data) {
  const groups = data.groups || {};
  const hours = entries(groups.language).reduce((sum, e) => sum + e.hours, 0);
  $("#totals").textContent = `${data.checked_segments} checked segment(s), ${hours.toFixed(3)} hour(s) of checked speech`;
  for (const [group, label] of [["language", "Language"], ["model", "Model"], ["recording", "Recording"],
                                ["speaker", "Speaker"], ["month", "Month"]]) {
    fillTable($(`#t-${group}`), FIGURE_COLUMNS(label), entries(groups[group]));
  }
  fillTable($("#t-english"), [["Language", (e) => e.key], ["Segments", (e) => String(e.segments), true],
                              ["chrF", (e) => e.chrf.toFixed(1), true], ["BLEU", (e) => e.bleu.toFixed(1), true]],
            entries(data.english));
  fillTable($("#t-corrections"), [["Heard", (e) => e.heard], ["Written", (e) => e.written],
                                  ["Times", (e) => String(e.times), true]],
            (data.corrections || []).map((c) => ({key: `${c.heard} -> ${c.written}`, ...c})));
  $("#glossary-lines").textContent = (data.glossary_lines || []).map((n) => n.name).join("\n");
  plotOverTime($("#plot-time"), data.model_month || {});
  plotPerRecording($("#plot-recording"), groups.recording || {});
  $("#figures").hidden = false;
}

function offer(languages, chosen) {
  const select = $("#language");
  if (select.options.length > 1) return;
  for (const language of languages) {
    const option = select.appendChild(document.createElement("option"));
    option.value = option.textContent = language;
  }
  select.value = chosen || "";
}

async function load() {
  const query = new URLSearchParams();
  if ($("#language").value) query.set("language", $("#language").value);
  if ($("#since").value) query.set("since", $("#since").value);
  $("#message").textContent = "Scoring the checked segments…";
  const asked = query.toString();
  const {status, data} = await getJson(`/api/quality${asked ? "?" + asked : ""}`);
  document.body.dataset.answered = String(status);  // what the last request got (tests wait for it)
  if (status !== 200) {
    $("#figures").hidden = true;
    $("#message").textContent = data.error || `the workspace answered ${status}`;
    return;
  }
  offer(data.languages || [], data.language);
  $("#message").textContent = data.checked_segments ? "" : "Nobody has checked a segment here yet.";
  show(data);
}

async function start() {
  const {status, data} = await getJson("/api/me");
  if (status === 200) $("#who-name").textContent = `${data.name} (${data.role})`;
  $("#language").addEventListener("change", load);
  $("#since").addEventListener("change", load);
  await load();
}

start();
