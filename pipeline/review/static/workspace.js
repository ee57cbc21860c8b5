// The review workspace: the archive page and the editor. Text is only ever set as text (textContent,
// value), never as markup, so a transcript cannot run code in this page. No request leaves 127.0.0.1.
"use strict";

const TOKEN = document.querySelector('meta[name="testimony-token"]').content;
const $ = (sel, root = document) => root.querySelector(sel);

async function api(path, body, method = "POST") {
  const init = body === undefined ? {} : {
    method, body: JSON.stringify(body),
    headers: {"Content-Type": "application/json", "X-Testimony-Token": TOKEN},
  };
  const response = await fetch(path, init);
  if (response.status === 401) { location.assign("/signin"); return {status: 401, data: {error: "sign in first"}}; }
  const data = await response.json().catch(() => ({error: response.statusText}));
  return {status: response.status, data};
}

const me = {name: "", role: "", languages: []};

// Who is signed in, and signing out. The server decides who the author of a save is, never this page.
async function showWho() {
  const {status, data} = await api("/api/me");
  if (status !== 200) return;
  Object.assign(me, data);
  $("#who-name").textContent = `${data.name} (${data.role}${data.languages.length ? ": " + data.languages.join(", ") : ""})`;
  $("#quality-link").hidden = !["admin", "reviewer"].includes(data.role);  // readers: the figures come from drafts
  $("#signout").addEventListener("click", async () => { await api("/api/session", {}, "DELETE"); location.assign("/signin"); });
  if (data.must_change) location.assign("/signin");
}

// A testimony's documents (DOCX, spreadsheets, OHMS XML), made by the server from the newest revision.
function documentLink(id, format, label) {
  const link = document.createElement("a");
  link.href = `/api/bundles/${id}/document?format=${format}`;
  link.textContent = label || format.toUpperCase();
  link.className = "document";
  link.dataset.format = format;
  return link;
}

function clock(seconds) {
  if (seconds === null || seconds === undefined) return "";
  const s = Math.floor(seconds);
  return `${Math.floor(s / 3600)}:${String(Math.floor(s / 60) % 60).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
}

// ---------------------------------------------------------------- the archive page
// The server filters, sorts and pages from its catalog: the page holds one page of rows, whatever the
// archive's size. A newer request supersedes an older one still in flight.
const archive = {key: "file_name", ascending: true, offset: 0, total: 0, asked: 0, timer: null,
                 limit: Number(new URLSearchParams(location.search).get("per_page")) || 100};

async function showArchive() {
  $("#archive").hidden = false;
  $("#filter").addEventListener("input", () => {
    clearTimeout(archive.timer);
    archive.timer = setTimeout(() => { archive.offset = 0; loadArchive(); }, 200);
  });
  $("#state-filter").addEventListener("change", () => { archive.offset = 0; loadArchive(); });
  $("#previous").addEventListener("click", () => turn(-1));
  $("#next").addEventListener("click", () => turn(1));
  for (const th of document.querySelectorAll("#bundles th")) {
    th.addEventListener("click", () => {
      archive.ascending = archive.key === th.dataset.key ? !archive.ascending : true;
      archive.key = th.dataset.key;
      archive.offset = 0;
      loadArchive();
    });
  }
  await loadArchive();
  await showQueues();
  await showProgress();
}

function turn(pages) {
  archive.offset = Math.max(0, archive.offset + pages * archive.limit);
  loadArchive();
}

async function loadArchive() {
  const asked = ++archive.asked;
  const query = new URLSearchParams({offset: archive.offset, limit: archive.limit, sort: archive.key,
                                     order: archive.ascending ? "asc" : "desc"});
  const words = $("#filter").value.trim(), state = $("#state-filter").value;
  if (words) query.set("q", words);
  if (state) query.set("state", state);
  const {status, data} = await api(`/api/bundles?${query}`);
  if (asked !== archive.asked) return;
  if (status !== 200) { $("#page-info").textContent = data.error || "could not list the archive"; return; }
  archive.total = data.total;
  drawArchive(data.bundles || []);
}

function drawArchive(rows) {
  const body = $("#bundles tbody");
  body.replaceChildren(...rows.map(r => {
    const tr = document.createElement("tr");
    const link = document.createElement("a");
    link.href = `/edit/${r.id}`;
    link.textContent = r.file_name;
    const docs = document.createElement("span");
    docs.append(documentLink(r.id, "docx"), " ", documentLink(r.id, "xlsx"));
    const flow = r.workflow === "in_review" ? `in review (${r.holder})` : r.workflow;
    const cells = [link, r.language || "?", clock(r.duration), String(r.speakers || ""), r.state, flow,
                   String(r.flagged), `${r.checked} / ${r.segments}`, docs];
    for (const value of cells) {
      const td = document.createElement("td");
      if (typeof value === "string") td.textContent = value; else td.append(value);
      tr.append(td);
    }
    tr.dataset.state = r.state;
    return tr;
  }));
  const first = rows.length ? archive.offset + 1 : 0;
  $("#page-info").textContent = `${first}–${archive.offset + rows.length} of ${archive.total}`;
  $("#previous").disabled = archive.offset === 0;
  $("#next").disabled = archive.offset + rows.length >= archive.total;
}

// ---------------------------------------------------------------- the editor
const ed = {id: null, base: null, number: 0, language: null, segments: [], current: 0, loopEnd: null};

async function showEditor(id) {
  ed.id = id;
  $("#editor").hidden = false;
  $("#speed").addEventListener("change", () => { $("#player").playbackRate = Number($("#speed").value); });
  $("#save").addEventListener("click", save);
  for (const button of document.querySelectorAll("#flow button")) button.addEventListener("click", () => move(button.dataset.action));
  $("#player").addEventListener("timeupdate", keepLooping);
  document.addEventListener("keydown", shortcut);
  await load();
}

async function load() {
  const {status, data} = await api(`/api/bundles/${ed.id}`);
  if (status !== 200) { say(data.error || "could not load this transcript"); return; }
  ed.base = data.revision; ed.number = data.number; ed.language = data.language;
  ed.segments = data.segments.map(s => ({...s}));
  $("#where").textContent = data.file_name;
  if (data.video && !$("#player").src) $("#player").src = data.video;
  $("#revision").textContent = `revision ${data.number}`;
  drawWorkflow(data.workflow);
  for (const link of document.querySelectorAll("#documents a[data-format]")) {
    link.href = `/api/bundles/${ed.id}/document?format=${link.dataset.format}`;
  }
  draw();
}

function say(text) { $("#status").textContent = text; }

function draw() {
  const list = $("#segments");
  list.replaceChildren(...ed.segments.map((seg, n) => segmentItem(seg, n)));
}

function segmentItem(seg, n) {
  const li = $("#segment-template").content.firstElementChild.cloneNode(true);
  li.dataset.index = n;
  li.classList.toggle("is-checked", !!seg.checked);
  li.classList.toggle("current", n === ed.current);
  $(".num", li).textContent = `#${n + 1}`;
  $(".start", li).value = seg.start;
  $(".end", li).value = seg.end;
  $(".speaker", li).value = seg.speaker || "";
  $(".original", li).value = seg.text;
  $(".english", li).value = seg.translation ?? "";
  $(".english", li).placeholder = ed.language === "en" ? "(English original)" : "English";
  $(".checked", li).checked = !!seg.checked;
  $(".source", li).textContent = seg.translation == null ? "no English" : `English: ${seg.english_source || "machine"}`;
  for (const flag of seg.flags || []) {
    const badge = document.createElement("span");
    badge.className = "flag";
    badge.textContent = flag.replace(/_/g, " ");
    $(".flags", li).append(badge);
  }
  for (const hint of seg.suggestions || []) {  // glossary near-misses: shown, for the reviewer to take
    const badge = document.createElement("span");
    badge.className = "flag suggestion";
    badge.textContent = `${hint.heard} → ${hint.glossary}?`;
    $(".flags", li).append(badge);
  }
  showCut(li, seg);
  wireSegment(li, seg, n);
  return li;
}

function wireSegment(li, seg, n) {
  li.addEventListener("focusin", () => setCurrent(n));
  const nudge = (field, delta) => { seg[field] = Math.max(0, Math.round((seg[field] + delta) * 10) / 10); draw(); };
  $(".start-minus", li).onclick = () => nudge("start", -0.1);
  $(".start-plus", li).onclick = () => nudge("start", 0.1);
  $(".end-minus", li).onclick = () => nudge("end", -0.1);
  $(".end-plus", li).onclick = () => nudge("end", 0.1);
  $(".start-here", li).onclick = () => { seg.start = playhead(); draw(); };
  $(".end-here", li).onclick = () => { seg.end = playhead(); draw(); };
  $(".start", li).onchange = e => { seg.start = Number(e.target.value); };
  $(".end", li).onchange = e => { seg.end = Number(e.target.value); };
  $(".speaker", li).oninput = e => { seg.speaker = e.target.value.trim() || null; };
  $(".original", li).oninput = e => { seg.text = e.target.value; seg.originalEdited = true; };
  $(".original", li).onchange = () => offerEnglish(li, seg);
  $(".english", li).oninput = e => { seg.translation = e.target.value === "" ? null : e.target.value;
    seg.accepted_machine = false; };
  $(".checked", li).onchange = e => { seg.checked = e.target.checked; li.classList.toggle("is-checked", seg.checked); };
  $(".play", li).onclick = () => playSegment(n);
  $(".split", li).onclick = () => split(n, $(".original", li).selectionStart);
  $(".merge", li).onclick = () => mergeNext(n);
}

async function offerEnglish(li, seg) {
  if (ed.language === "en" || !seg.originalEdited) return;
  const {status, data} = await api(`/api/bundles/${ed.id}/translate`, {text: seg.text});
  if (status !== 200 || !data.translation) return;
  $(".offer-text", li).textContent = `Machine English for the edited original: ${data.translation}`;
  $(".offer", li).hidden = false;
  $(".use-offer", li).onclick = () => {
    seg.translation = data.translation; seg.accepted_machine = true; seg.english_source = "machine"; draw();
  };
}

function setCurrent(n) {
  if (ed.current === n) return;
  ed.current = n;
  for (const li of document.querySelectorAll("#segments .seg")) li.classList.toggle("current", Number(li.dataset.index) === n);
}

function playhead() { return Math.round($("#player").currentTime * 10) / 10; }

function playSegment(n) {
  const seg = ed.segments[n], player = $("#player");
  setCurrent(n);
  player.currentTime = seg.start;
  ed.loopEnd = seg.end;
  player.play().catch(() => say("the video cannot play here"));
}

function keepLooping() {
  const player = $("#player");
  if (ed.loopEnd === null || player.currentTime < ed.loopEnd) return;
  const seg = ed.segments[ed.current];
  if ($("#loop").checked && seg) player.currentTime = seg.start; else { player.pause(); ed.loopEnd = null; }
}

// A split leaves a cut (and a Restore or Dismiss of it) on the later part only: the loop was cut off
// the END of the segment, so only there would Restore put it back where it was heard.
function split(n, at) {
  const seg = ed.segments[n];
  if (!(at > 0 && at < seg.text.length)) { say("put the cursor inside the original text where it should split"); return; }
  const inside = playhead() > seg.start && playhead() < seg.end;
  const time = inside ? playhead() : Math.round((seg.start + (seg.end - seg.start) * at / seg.text.length) * 1000) / 1000;
  const right = {...seg, id: null, split_from: seg.id ?? seg.split_from, start: time, text: seg.text.slice(at).trim(),
                 translation: null, english_source: null, checked: false};
  Object.assign(seg, {end: time, text: seg.text.slice(0, at).trim(), checked: false, cut: null,
                      restoreCut: false, dismissCut: false});
  ed.segments.splice(n + 1, 0, right);
  draw();
}

// A merge keeps the cut of the segment merged in (it is still at the end). A segment that still ends
// in an unanswered cut may not take the next one in: the loop would sit inside the merged text, where
// Restore could not put it back, and dropping it would take the Restore away unseen. The reviewer
// restores or dismisses it first (one click); the server refuses such a save too.
function mergeNext(n) {
  const seg = ed.segments[n], next = ed.segments[n + 1];
  if (!next) { say("this is the last segment"); return; }
  const why = mergeRefusal(seg, next, n);
  if (why) { say(why); return; }
  const english = [seg.translation, next.translation].filter(Boolean).join(" ");
  Object.assign(seg, {end: next.end, text: `${seg.text} ${next.text}`.trim(), translation: english || null,
                      checked: false});
  if (next.cut || sameFamily(seg, next)) {
    Object.assign(seg, {cut: next.cut, restoreCut: !!next.restoreCut, dismissCut: !!next.dismissCut});
  }
  ed.segments.splice(n + 1, 1);
  draw();
}

function payload() {
  return ed.segments.map(s => ({id: s.id, split_from: s.split_from, start: Number(s.start), end: Number(s.end),
    text: s.text, translation: s.translation, speaker: s.speaker || null, checked: !!s.checked,
    english_source: s.english_source || null, accepted_machine: !!s.accepted_machine, restore_cut: !!s.restoreCut,
    dismiss_cut: !!s.dismissCut}));
}

async function save() {
  const {status, data} = await api(`/api/bundles/${ed.id}/revisions`, {base: ed.base, segments: payload()});
  if (status === 201 || status === 200) {
    say(data.unchanged ? "nothing changed" : `saved revision ${data.number}${data.merged ? " (merged with another save)" : ""}`);
    $("#conflicts").hidden = true;
    await load();
  } else if (status === 409) {
    showConflicts(data);
  } else {
    say(`not saved: ${data.error}`);
  }
}

function nextFlagged() {
  const n = ed.segments.findIndex((s, i) => i > ed.current && (s.flags || []).length && !s.checked);
  const found = n >= 0 ? n : ed.segments.findIndex(s => (s.flags || []).length && !s.checked);
  if (found < 0) { say("no unchecked flagged segment left"); return; }
  setCurrent(found);
  $(`#segments .seg[data-index="${found}"] .original`).focus();
}

function shortcut(event) {
  const key = event.key.toLowerCase();
  if (event.ctrlKey && key === " ") { event.preventDefault(); const p = $("#player"); if (p.paused) p.play().catch(() => {}); else p.pause(); }
  else if (event.ctrlKey && key === "s") { event.preventDefault(); save(); }
  else if (event.altKey && key === "r") { event.preventDefault(); playSegment(ed.current); }
  else if (event.altKey && key === "n") { event.preventDefault(); nextFlagged(); }
  else if (event.altKey && key === "l") { event.preventDefault(); $("#loop").checked = !$("#loop").checked; }
  else if (event.altKey && key === "c") {
    event.preventDefault();
    const seg = ed.segments[ed.current];
    if (seg) { seg.checked = !seg.checked; const box = $(`#segments .seg[data-index="${ed.current}"] .checked`);
      if (box) { box.checked = seg.checked; box.closest(".seg").classList.toggle("is-checked", seg.checked); } }
  }
}


// ---------------------------------------------------------------- the workflow
// draft -> in review (one reviewer holds it) -> checked (by the holder) -> approved (by someone else).
// The server decides who may move what; the buttons only say what can be asked.
const HOURS = (h) => h ? clock(h * 3600) : "–";  // h:mm:ss, as the archive's durations

async function showProgress() {
  const {status, data} = await api("/api/progress");
  if (status !== 200) return;
  const body = $("#progress tbody");
  body.replaceChildren(...Object.entries(data.languages).map(([language, hours]) => {
    const tr = document.createElement("tr");
    tr.append(...[language, ...data.states.map(s => HOURS(hours[s]))].map(text => {
      const td = document.createElement("td"); td.textContent = text; return td;
    }));
    return tr;
  }));
  $("#progress-section").hidden = false;
}

async function showQueues() {
  if (me.role === "reader") return;
  const languages = me.role === "admin" ? Object.keys((await api("/api/progress")).data.languages || {}) : me.languages;
  const list = $("#queue");
  list.replaceChildren();
  for (const language of languages) {
    const {status, data} = await api(`/api/queue?language=${encodeURIComponent(language)}`);
    if (status !== 200) continue;
    for (const draft of data.drafts) {
      const li = document.createElement("li");
      const name = document.createElement("span");
      name.textContent = `${language}: ${draft.file_name} (${clock(draft.duration)})`;
      const claim = document.createElement("button");
      claim.type = "button"; claim.textContent = "Claim"; claim.className = "claim";
      claim.addEventListener("click", async () => {
        const {status, data: answer} = await api(`/api/bundles/${draft.id}/state`, {action: "claim"});
        if (status === 200) location.assign(`/edit/${draft.id}`); else claim.replaceWith(answer.error);
      });
      li.append(name, " ", claim);
      list.append(li);
    }
  }
  $("#queue-section").hidden = false;
}

function drawWorkflow(flow) {
  $("#flow-state").textContent = flow ? flow.words : "";
  const mine = flow && flow.holder === me.name;
  const can = {
    claim: flow && flow.state === "draft" && me.role !== "reader",
    release: flow && flow.state === "in_review" && (mine || me.role === "admin"),
    check: flow && flow.state === "in_review" && mine,
    approve: flow && flow.state === "checked" && flow.checker !== me.name && me.role !== "reader",
  };
  for (const [action, allowed] of Object.entries(can)) $(`#flow button[data-action=${action}]`).hidden = !allowed;
  $("#save").hidden = me.role === "reader";
}

async function move(action) {
  const {status, data} = await api(`/api/bundles/${ed.id}/state`, {action});
  if (status === 200) { say(`now ${data.words}`); drawWorkflow(data); } else say(`not done: ${data.error}`);
}

const match = location.pathname.match(/^\/edit\/([0-9a-f]{12})$/);
showWho().then(() => { if (match) showEditor(match[1]); else showArchive(); });
