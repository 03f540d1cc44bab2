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

// The campaign form: the preview re-rendered as the greeting is typed, and the agent menu
// refreshed when the organisation changes (dialer/web/editor.py answers both in JSON).
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
      for (const text of [r.row, r.called_to, r.status, r.status === "ready" ? r.first_line : r.reason]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.append(td);
      }
      return tr;
    }));
  };
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
