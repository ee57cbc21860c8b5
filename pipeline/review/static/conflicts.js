// The review editor's conflict view: two reviewers' saves changed the same segments differently and the
// server answered 409 with both versions. Loaded before workspace.js, whose globals these use when called.
"use strict";

// Each conflict shows both versions, and what each did with a loop the machine cut off the segment:
// a reviewer choosing between them must see that one restored the loop and the other did not.
function showConflicts(data) {
  say(`not saved: ${data.error}`);
  const mine = new Map(payload().map(s => [s.id, s]));
  ed.base = data.newest;
  ed.segments = data.segments.map(s => ({...s}));
  const pending = new Set(data.conflicts.map(c => c.segment));
  const list = $("#conflict-list");
  list.replaceChildren(...data.conflicts.map(c => {
    const box = document.createElement("div");
    box.className = "conflict";
    box.dataset.segment = c.segment;
    for (const [label, shown, version] of [["theirs", c.theirs, c.theirs], ["mine", c.mine, mine.get(c.segment) || c.mine]]) {
      const side = document.createElement("div");
      side.className = label;
      const text = document.createElement("p");
      text.textContent = version ? `${version.text} — ${version.translation ?? ""}` : "(removed)";
      const choose = document.createElement("button");
      choose.type = "button";
      choose.textContent = label === "mine" ? "Keep mine" : "Keep theirs";
      choose.onclick = () => { choose_(c.segment, version); pending.delete(c.segment); box.remove();
        if (!pending.size) { $("#conflicts").hidden = true; say("every conflict chosen: save again"); } };
      side.append(text);
      const cut = conflictCut(c.base, shown, version);
      if (cut) { const line = document.createElement("p"); line.className = "cut"; line.textContent = cut; side.append(line); }
      side.append(choose);
      box.append(side);
    }
    return box;
  }));
  $("#conflicts").hidden = false;
  draw();
}

// What one side of a conflict did with the cut: still cut (`shown`, the server's version, carries it),
// or restored / dismissed (the base had it and this side does not).
function conflictCut(base, shown, version) {
  if (shown && shown.cut) return `Cut as a machine loop: ${cutName(shown.cut)} (not restored)`;
  if (!shown || !base || !base.cut) return "";
  const restored = version.restore_cut || version.text.includes(base.cut.text.trim());
  return `Cut loop ${cutName(base.cut)}: ${restored ? "restored" : "dismissed"}`;
}

// The chosen version replaces the segment in the merged list. The cut stays the newest revision's (the
// server places cuts from its base), and mine keeps its own Restore or Dismiss, so the next save
// neither loses it nor offers the same loop twice.
function choose_(segmentId, version) {
  const at = ed.segments.findIndex(s => s.id === segmentId);
  const chosen = version ? {...version, cut: at >= 0 ? ed.segments[at].cut : version.cut,
    restoreCut: !!(version.restore_cut || version.restoreCut), dismissCut: !!(version.dismiss_cut || version.dismissCut)} : null;
  if (chosen === null) { if (at >= 0) ed.segments.splice(at, 1); }
  else if (at >= 0) ed.segments[at] = chosen;
  else { ed.segments.push(chosen); ed.segments.sort((a, b) => a.start - b.start); }
  draw();
}
