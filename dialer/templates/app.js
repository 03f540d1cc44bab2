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
    }
  });
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
