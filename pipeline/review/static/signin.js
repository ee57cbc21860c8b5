// The sign-in page: the password goes to /api/session as JSON (never in a URL, never kept here);
// the server answers with an HttpOnly cookie this script cannot read.
"use strict";

const TOKEN = document.querySelector('meta[name="testimony-token"]').content;
const $ = (sel) => document.querySelector(sel);
let current = "";

async function send(method, path, body) {
  const response = await fetch(path, {method, body: JSON.stringify(body),
    headers: {"Content-Type": "application/json", "X-Testimony-Token": TOKEN}});
  const data = await response.json().catch(() => ({error: response.statusText}));
  return {status: response.status, data};
}

function say(text) { $("#message").textContent = text; }

$("#signin").addEventListener("submit", async (event) => {
  event.preventDefault();
  current = $("#password").value;
  const {status, data} = await send("POST", "/api/session", {name: $("#name").value.trim(), password: current});
  if (status !== 200) { say(data.error || "sign-in refused"); return; }
  if (!data.must_change) { location.assign("/"); return; }
  $("#signin").hidden = true;
  $("#change").hidden = false;
  say("");
});

$("#change").addEventListener("submit", async (event) => {
  event.preventDefault();
  if ($("#new").value !== $("#again").value) { say("the two passwords differ"); return; }
  const {status, data} = await send("POST", "/api/password", {password: current, new: $("#new").value});
  if (status !== 200) { say(data.error || "the password was not changed"); return; }
  current = "";
  location.assign("/");
});
