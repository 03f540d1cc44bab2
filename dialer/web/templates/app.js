// Live progress of a run: counts, rate and failures pushed by server-sent events.
(function () {
  const run = document.getElementById("run");
  if (!run) return;
  const source = new EventSource(run.dataset.events);
  const setText = (id, text) => { const el = document.getElementById(id); if (el) el.textContent = text; };
  source.addEventListener("progress", (event) => {
    const s = JSON.parse(event.data);
    setText("run-state", s.state_text);
    setText("rate", s.rate);
    setText("done", s.done);
    setText("progress-text", s.progress_text);
    setText("time-left", s.time_left);
    const bar = document.getElementById("progress");
    if (bar) { bar.max = s.total || 1; bar.value = s.called; bar.textContent = s.progress_text; }
    const notCalled = document.getElementById("not-called");
    if (notCalled) notCalled.replaceChildren(...s.not_called.map(([n, words]) => {
      const li = document.createElement("li");
      li.textContent = `${n} ${words}`;
      return li;
    }));
    const counts = document.getElementById("live-counts");
    counts.replaceChildren(...s.counts.map(([status, n, words]) => {
      const tr = document.createElement("tr");
      tr.dataset.status = status;
      const th = document.createElement("th"); th.textContent = words || status;
      const td = document.createElement("td"); td.textContent = n;
      tr.append(th, td);
      return tr;
    }));
    const failures = document.getElementById("failures");
    const items = s.failures.map((f) => `row ${f.row} ${f.called_to}: ${f.status}: ${f.reason}`);
    failures.replaceChildren(...(items.length ? items : ["none"]).map((text) => {
      const li = document.createElement("li");
      li.textContent = text;
      return li;
    }));
    const messages = document.getElementById("messages");
    messages.replaceChildren(...s.messages.flatMap((m) => [document.createTextNode(m), document.createElement("br")]));
    if (s.finished) {
      const stop = document.getElementById("stop-form");
      if (stop) stop.hidden = true;
      const confirmStop = document.getElementById("stop-confirm-form");
      if (confirmStop) confirmStop.hidden = true;
      const resume = document.getElementById("resume-form");
      if (resume && s.resume) { setText("resume-count", s.resume); resume.hidden = false; }
      const downloads = document.getElementById("downloads");
      if (downloads) downloads.hidden = false;
      source.close();
      document.dispatchEvent(new Event("run-finished"));
    }
  });
})();

// The campaign form: the preview re-rendered as the greeting is typed, the sheet's columns
// inserted at the cursor from a menu, "call me first" answered beside its button, and the
// agent menu refreshed when the organisation changes (dialer/web/views/editor.py answers in JSON).
(function () {
  const form = document.getElementById("campaign-form");
  if (!form) return;
  const byId = (id) => document.getElementById(id);
  let timer = null;
  let asked = 0;
  const render = (result) => {
    const error = byId("preview-error");
    error.textContent = result.error || "";
    error.hidden = !result.error;
    const first = result.rows.find((r) => r.status === "ready");
    byId("preview-row").textContent = first ? first.row : "";
    byId("preview-greeting").textContent = first ? first.first_line : "";
    byId("preview-instruction").textContent = first ? first.instruction : "";
    byId("preview-rows").replaceChildren(...result.rows.map((r) => {
      const tr = document.createElement("tr");
      tr.dataset.row = r.row;
      tr.dataset.status = r.status;
      for (const text of [r.row, r.called_to, r.country || "", r.status, r.status === "ready" ? r.first_line : r.reason]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.append(td);
      }
      return tr;
    }));
    if (result.headers) menu(result.headers);
    // The row to test-call with follows the preview until the user chooses one.
    const row = byId("test-row");
    if (row && first && !row.dataset.touched) row.value = first.row;
  };
  // "Insert a column": the sheet's headers, each written as the template reads it.
  const insert = byId("insert-column");
  let target = byId("first-line");
  for (const id of ["first-line", "instruction"]) {
    const el = byId(id);
    if (el) el.addEventListener("focus", () => { target = el; });
  }
  const menu = (headers) => {
    if (!insert) return;
    const first = insert.options[0];
    first.textContent = headers.length ? "Choose a column of the sheet" : "Choose a sheet below first";
    insert.replaceChildren(first, ...headers.map((h) => new Option(h.header, h.insert)));
    insert.disabled = !headers.length;
  };
  if (insert) insert.addEventListener("change", () => {
    const text = insert.value;
    insert.selectedIndex = 0;
    if (!text || !target) return;
    const start = target.selectionStart ?? target.value.length;
    const end = target.selectionEnd ?? start;
    target.setRangeText(text, start, end, "end");
    target.focus();
    target.dispatchEvent(new Event("input", { bubbles: true }));
  });
  const testRow = byId("test-row");
  if (testRow) testRow.addEventListener("input", () => { testRow.dataset.touched = "yes"; });
  // Enter in the test call's fields places the test call, never saves the campaign.
  for (const id of ["test-number", "test-row"]) {
    const el = byId(id);
    if (el) el.addEventListener("keydown", (event) => {
      if (event.key !== "Enter") return;
      event.preventDefault();
      const button = byId("test-call");
      if (button && !button.disabled) button.click();
    });
  }
  // "Call me first": posted with fetch, the outcome shown by the button; one call at a time.
  const call = byId("test-call");
  const said = byId("test-call-result");
  if (call && said) call.addEventListener("click", async (event) => {
    event.preventDefault();
    if (call.disabled) return;
    const label = call.textContent;
    call.disabled = true;
    call.setAttribute("aria-busy", "true");
    call.textContent = call.dataset.busy || label;
    said.hidden = true;
    const body = new FormData(form);
    body.set("reply", "json");
    try {
      const answer = await fetch(call.getAttribute("formaction"), { method: "POST", body, credentials: "same-origin" });
      // A refusal (400, or 429 for a cap) still says why in JSON; anything else, its status.
      const json = (answer.headers.get("Content-Type") || "").includes("json");
      const result = json ? await answer.json() : { ok: false, message: `The test call was not placed (${answer.status}).` };
      said.textContent = result.message;
      said.className = result.ok ? "notice test-call-result" : "error test-call-result";
    } catch (e) {
      said.textContent = "The server did not answer: check that it is running, then try again.";
      said.className = "error test-call-result";
    }
    said.hidden = false;
    call.textContent = label;
    call.removeAttribute("aria-busy");
    call.disabled = false;
    said.scrollIntoView({ block: "nearest" });
  });
  const preview = () => {
    const mine = ++asked;
    fetch(form.dataset.preview, { method: "POST", body: new FormData(form), credentials: "same-origin" })
      .then((answer) => answer.ok ? answer.json() : null)
      .then((result) => { if (result && mine === asked) render(result); })
      .catch(() => {});
  };
  const later = () => { clearTimeout(timer); timer = setTimeout(preview, 300); };
  for (const id of ["first-line", "instruction", "default-region", "preview-sheet"]) {
    const el = byId(id);
    if (el) el.addEventListener(el.tagName === "SELECT" ? "change" : "input", later);
  }
  const org = byId("organization-id");
  if (org) org.addEventListener("change", () => {
    const agent = byId("agent-id");
    const query = new URLSearchParams({ organization_id: org.value, campaign: form.elements.original.value });
    fetch(`${form.dataset.agents}?${query}`, { credentials: "same-origin" })
      .then((answer) => answer.ok ? answer.json() : null)
      .then((result) => {
        if (!result || !result.agents.length) return;
        const menu = document.createElement("select");
        menu.id = "agent-id";
        menu.name = "agent_id";
        menu.required = true;
        const choose = new Option("Choose an agent", "");
        menu.append(choose, ...result.agents.map((a) => new Option(a.label, String(a.id), false, String(a.id) === agent.value)));
        agent.replaceWith(menu);
      })
      .catch(() => {});
  });
})();

// Times: the server writes UTC (<time datetime="...Z">); shown here in the browser's own zone.
function localTimes(root) {
  root.querySelectorAll("time[datetime]").forEach((el) => {
    const when = new Date(el.dateTime);
    if (!isNaN(when)) { el.textContent = when.toLocaleString(); el.title = el.dateTime; }
  });
}
localTimes(document);

// Results: while a finished run's page (or a campaign's results page) is open, ask for a sync
// every data-auto-sync seconds (the server syncs at most that often) and show the new section.
(function () {
  let timer = null;
  const box = () => document.getElementById("results");
  async function autoSync() {
    const section = box();
    const csrf = document.querySelector('input[name="csrf"]');
    if (!section || !csrf) return;
    const body = new URLSearchParams({ csrf: csrf.value, run: section.dataset.run, auto: "1", reply: "fragment" });
    try {
      const answer = await fetch(section.dataset.syncUrl, { method: "POST", body, credentials: "same-origin" });
      if (!answer.ok) return;
      const fresh = document.createRange().createContextualFragment(await answer.text());
      const replacement = fresh.querySelector("#results");
      if (replacement) { box().replaceWith(replacement); localTimes(replacement); }
    } catch (e) { /* offline for a moment: the next tick tries again */ }
  }
  function start(seconds) {
    // Syncing is a caller's: a viewer's page (no data-may-sync) does not ask.
    if (timer !== null || !seconds || !box().dataset.maySync) return;
    autoSync();
    timer = setInterval(autoSync, seconds * 1000);
  }
  const section = box();
  if (!section) return;
  if (section.dataset.autoSync) start(Number(section.dataset.autoSync));
  // A run that ends while its page is open: its results section appears by the first sync.
  document.addEventListener("run-finished", () => start(Number(section.dataset.every)));
})();

// The schedule form's time zone: the browser's own, unless the user typed one (kept on errors).
(function () {
  const zone = document.querySelector("#schedule-zone[data-browser-zone]");
  if (!zone || !window.Intl) return;
  const mine = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (mine) zone.value = mine;
})();

// The column page: a tab chosen shows its columns; a column chosen shows its first cells.
(function () {
  const tab = document.getElementById("tab");
  if (tab && tab.form) tab.addEventListener("change", () => tab.form.submit());
  for (const select of document.querySelectorAll("select[data-examples-in]")) {
    select.addEventListener("change", () => {
      const out = document.getElementById(select.dataset.examplesIn);
      const chosen = select.options[select.selectedIndex];
      if (out && chosen) out.textContent = chosen.dataset.examples || "";
    });
  }
})();
