// teambot console: the Ask page's streamed answers and votes, and a source's live refresh.
// No framework and nothing fetched from elsewhere; every request carries the CSRF token.
"use strict";

const csrf = () => document.querySelector('meta[name="csrf"]').content;

function post(url, body) {
  return fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "content-type": "application/json", "x-csrf-token": csrf(),
               "x-requested-with": "fetch" },
    body: JSON.stringify(body || {}),
  });
}

function element(tag, attributes, text) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

// --- Ask ------------------------------------------------------------------------------------

function renderAnswer(box, answer) {
  box.dataset.turn = answer.turn || "";
  // The server made the Markdown safe (bot.console.answer_html): no raw HTML, only http(s)
  // and mailto links, no images; the same HTML a reload of the conversation shows.
  box.querySelector(".text").innerHTML = answer.html;
  if (answer.citations.length) {
    box.append(element("h2", { class: "sources-heading" }, answer.heading));
    const list = element("ol", { class: "citations" });
    for (const c of answer.citations) {
      const item = element("li", { value: String(c.n), id: c.anchor });
      if (c.url && /^https?:/i.test(c.url)) {
        item.append(element("a", { href: c.url, rel: "noopener noreferrer", target: "_blank" }, c.label));
      } else {
        item.append(document.createTextNode(c.label + " "), element("code", {}, c.location));
      }
      list.append(item);
    }
    box.append(list);
  }
  box.append(element("p", { class: "note" }, answer.note + (answer.model ? " · " + answer.model : "")));
  if (answer.turn) {
    const votes = element("div", { class: "votes", role: "group", "aria-label": "Was this answer helpful?" });
    votes.append(
      element("button", { type: "button", class: "vote", "data-value": "1", "aria-pressed": "false", "aria-label": "Helpful" }, "👍 Helpful"),
      element("button", { type: "button", class: "vote", "data-value": "-1", "aria-pressed": "false", "aria-label": "Not helpful" }, "👎 Not helpful"),
      element("span", { class: "vote-status", role: "status" }));
    box.append(votes);
  }
}

async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let kind = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) kind = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      onEvent(kind, JSON.parse(data || "{}"));
    }
  }
}

async function ask(event) {
  event.preventDefault();
  const form = event.target, field = form.querySelector("#question");
  const button = form.querySelector("#ask-button"), status = form.querySelector("#ask-status");
  const conversation = document.getElementById("conversation");
  const text = field.value.trim();
  if (!text) return;
  button.disabled = true;
  status.textContent = "Answering…";
  const asked = element("div", { class: "turn question" });
  asked.append(element("p", {}, text));
  const box = element("div", { class: "turn answer streaming", "aria-busy": "true" });
  box.append(element("div", { class: "text" }, ""));
  conversation.append(asked, box);
  field.value = "";
  try {
    const response = await post("/console/ask/stream", { question: text, thread: conversation.dataset.thread });
    if (response.status === 401) { location.href = "/console/login?next=" + encodeURIComponent(location.pathname + location.search); return; }
    if (!response.ok) throw new Error((await response.json()).error || response.statusText);
    let shown = "";
    await readEvents(response, (kind, data) => {
      if (kind === "delta") { shown += data.text; box.querySelector(".text").textContent = shown; }
      else if (kind === "restart") { shown = ""; box.querySelector(".text").textContent = "(The model stopped mid-answer; asking another one…)"; }
      else if (kind === "answer") { renderAnswer(box, data); }
      else if (kind === "error") { box.querySelector(".text").textContent = data.message; box.classList.add("failed"); }
    });
    status.textContent = "";
  } catch (error) {
    box.querySelector(".text").textContent = "Could not get an answer: " + error.message + ". Try again.";
    status.textContent = "";
  } finally {
    box.classList.remove("streaming");
    box.removeAttribute("aria-busy");
    button.disabled = false;
    field.focus();
  }
}

async function vote(event) {
  const button = event.target.closest("button.vote");
  if (!button) return;
  const box = button.closest(".answer"), group = button.closest(".votes");
  const response = await post("/console/ask/vote", { turn: Number(box.dataset.turn), value: Number(button.dataset.value) });
  const answer = await response.json();
  group.querySelector(".vote-status").textContent = answer.message || answer.error || "";
  if (response.ok) for (const b of group.querySelectorAll("button.vote")) b.setAttribute("aria-pressed", String(b === button));
}

// --- Sources ---------------------------------------------------------------------------------

function describe(status) {
  const run = status.run;
  if (status.state === "queued") return "Queued: a worker starts it within seconds…";
  if (status.state === "starting") return "Starting…";
  if (status.state === "running") return `Running for ${run.seconds} s: ${status.pages} pages indexed so far…`;
  if (status.outcome !== null && status.outcome !== undefined) return status.outcome;
  if (run) return `Last run: ${run.status}, ${run.counts.pages_seen || 0} pages seen, ${run.counts.chunks_embedded || 0} chunks embedded.`;
  return "Never refreshed.";
}

async function watch(source, line, button) {
  for (let i = 0; i < 3600; i++) {  // an hour at most
    const response = await fetch(`/console/sources/${source}/status`, { headers: { "x-requested-with": "fetch", accept: "application/json" } });
    if (!response.ok) { line.textContent = "Could not read the refresh's progress; reload the page."; break; }
    const status = await response.json();
    line.textContent = describe(status);
    if (!["queued", "starting", "running"].includes(status.state)) {
      line.dataset.state = "done";
      button.disabled = false;
      const runs = document.getElementById("runs");
      if (runs) {  // show the new run in the table
        const fresh = await fetch(location.href, { headers: { "x-requested-with": "fetch" } });
        const page = new DOMParser().parseFromString(await fresh.text(), "text/html");
        const table = page.getElementById("runs");
        if (table) runs.replaceWith(table);
      }
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, 700));
  }
}

async function refresh(event) {
  const button = event.target, line = document.getElementById("refresh-status");
  button.disabled = true;
  line.dataset.state = "working";
  line.textContent = "Asking for a refresh…";
  const response = await post(`/console/sources/${button.dataset.source}/refresh`);
  if (response.status === 409) line.textContent = "A refresh started here is still running.";
  watch(button.dataset.source, line, button);
}

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("ask-form");
  if (form) {
    form.addEventListener("submit", ask);
    form.querySelector("#question").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) form.requestSubmit();
    });
    document.getElementById("conversation").addEventListener("click", vote);
  }
  const button = document.getElementById("refresh-button");
  if (button) button.addEventListener("click", refresh);
});
