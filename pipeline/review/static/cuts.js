// The review editor's part for loops the machine cut off a segment's end (`cut`, see pipeline/asr/loops.py
// and pipeline/review/cuts.py, which decides where a cut goes on save). Loaded before workspace.js,
// whose globals ($, say, draw) these use when called.
"use strict";

// A loop the machine cut off this segment's end (`cut`: what was heard once stays in the text). One
// quiet line says so, with two answers, each an unsaved edit that a save records: Restore (it was
// speech: the cut goes back at the end of the text) or Dismiss (it was the machine: the text stays as
// it is). Either way the saved segment no longer carries the cut (the server, `cuts.py`, drops it on
// `restore_cut` / `dismiss_cut`); the earlier revisions keep it.
function showCut(li, seg) {
  if (!seg.cut || settled(seg)) return;
  $(".cut-text", li).textContent = `Cut as a machine loop: ${cutName(seg.cut)} —`;
  $(".cut", li).hidden = false;
  $(".restore-cut", li).onclick = () => {
    // The cut starts with its own space: a typo fix that left a trailing space must not double it.
    const kept = /^\s/.test(seg.cut.text) ? seg.text.replace(/\s+$/, "") : seg.text;
    seg.text = kept + seg.cut.text; seg.restoreCut = true; seg.originalEdited = true;
    draw();
    say("the cut is back in the text: save to keep it");
  };
  $(".dismiss-cut", li).onclick = () => {
    seg.dismissCut = true;
    draw();
    say("the loop stays cut: save to record it");
  };
}

function settled(seg) { return !!(seg.restoreCut || seg.dismissCut); }

function cutName(cut) {
  const words = cut.text.trim();
  return `«${words.length > 24 ? `${words.slice(0, 24).trim()} …` : words}» ×${cut.repeats}`;
}

function mergeRefusal(seg, next, n) {
  if (seg.cut && !settled(seg)) {
    return `not merged: #${n + 1} ends in a loop the machine cut (${cutName(seg.cut)}); merged, it would sit ` +
      "inside the text, where Restore could not put it back: Restore or Dismiss it first";
  }
  if (!sameFamily(seg, next) && (settled(next) || (settled(seg) && next.cut))) {
    return "not merged: save first (a cut loop here is restored or dismissed, not saved yet)";
  }
  return null;
}

// The later part of a split of this very segment, not saved yet: merging it back undoes the split.
function sameFamily(seg, next) { return next.id == null && next.split_from === (seg.id ?? seg.split_from); }
