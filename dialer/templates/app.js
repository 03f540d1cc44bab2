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
    const counts = document.getElementById("live-counts");
    counts.replaceChildren(...s.counts.map(([status, n]) => {
      const tr = document.createElement("tr");
      tr.dataset.status = status;
      const th = document.createElement("th"); th.textContent = status;
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
      document.getElementById("stop-form").hidden = true;
      document.getElementById("downloads").hidden = false;
      source.close();
      document.dispatchEvent(new Event("run-finished"));
    }
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
    if (timer !== null || !seconds) return;
    autoSync();
    timer = setInterval(autoSync, seconds * 1000);
  }
  const section = box();
  if (!section) return;
  if (section.dataset.autoSync) start(Number(section.dataset.autoSync));
  // A run that ends while its page is open: its results section appears by the first sync.
  document.addEventListener("run-finished", () => start(Number(section.dataset.every)));
})();
