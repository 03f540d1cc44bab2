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
      document.getElementById("stop-form").hidden = true;
      const confirmStop = document.getElementById("stop-confirm-form");
      if (confirmStop) confirmStop.hidden = true;
      const resume = document.getElementById("resume-form");
      if (resume && s.resume) { setText("resume-count", s.resume); resume.hidden = false; }
      document.getElementById("downloads").hidden = false;
      source.close();
    }
  });
})();

// The schedule form's time zone: the browser's own, unless the user typed one (kept on errors).
(function () {
  const zone = document.querySelector("#schedule-zone[data-browser-zone]");
  if (!zone || !window.Intl) return;
  const mine = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (mine) zone.value = mine;
})();
