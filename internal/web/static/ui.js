// ubihooks UI: the one first-party script. Every page works without it; it only adds
// live updates, row editing, copy buttons, local times and an in-place webhook test.
"use strict";
(() => {
  const root = document.documentElement;
  root.classList.add("js");

  // <time datetime> in the reader's time zone; the UTC text stays in the title.
  const localTimes = (scope) => {
    for (const t of scope.querySelectorAll("time[datetime]")) {
      const d = new Date(t.getAttribute("datetime"));
      if (isNaN(d)) continue;
      if (!t.title) t.title = t.textContent;
      t.textContent = d.toLocaleString(undefined, { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });
    }
  };

  // Parts of a page marked data-poll="ms" are fetched again (same URL, or data-poll-url)
  // and replaced by the element of the same id, until the new one has no data-poll, for
  // at most ten minutes after the page loaded.
  const pollers = new WeakSet();
  const poll = (el) => {
    if (pollers.has(el) || !el.id) return;
    pollers.add(el);
    const every = Math.max(500, parseInt(el.dataset.poll, 10) || 5000);
    const url = el.dataset.pollUrl || location.href;
    const deadline = Date.now() + 10 * 60 * 1000;
    const tick = async () => {
      if (!el.isConnected || Date.now() > deadline) return;
      try {
        const res = await fetch(url, { credentials: "same-origin", cache: "no-store" });
        if (res.ok) {
          const doc = new DOMParser().parseFromString(await res.text(), "text/html");
          const next = doc.getElementById(el.id);
          if (next) {
            const fresh = document.importNode(next, true);
            el.replaceWith(fresh);
            enhance(fresh);
            return; // the fresh element polls on if it still asks to
          }
        }
      } catch (e) { /* offline for a moment: try again */ }
      setTimeout(tick, later());
    };
    // A hidden tab polls five times less often.
    const later = () => (document.hidden ? every * 5 : every);
    setTimeout(tick, later());
  };

  // Header and label rows: "Add" clones a <template>, numbering its fields.
  const addRow = (button) => {
    const tpl = document.getElementById(button.dataset.addRow);
    const list = document.getElementById(button.dataset.rows);
    if (!tpl || !list) return;
    const n = parseInt(list.dataset.next || String(list.children.length), 10);
    list.dataset.next = String(n + 1);
    const frag = tpl.content.cloneNode(true);
    for (const e of frag.querySelectorAll("[name],[id],[for],[aria-label]")) {
      for (const a of ["name", "id", "for", "aria-label"]) {
        if (e.hasAttribute(a)) e.setAttribute(a, e.getAttribute(a).replaceAll("__i__", String(n)).replaceAll("__n__", String(n + 1)));
      }
    }
    list.appendChild(frag);
    const first = list.lastElementChild && list.lastElementChild.querySelector("input");
    if (first) first.focus();
  };

  // The Test button of a webhook form runs the test in place, so that what was typed
  // stays in the form (a page reload would have to drop protected values).
  const runTest = async (form, button) => {
    const out = document.getElementById("test-result");
    if (!out) return false;
    const body = new URLSearchParams(new FormData(form, button));
    button.disabled = true;
    out.innerHTML = "";
    const p = document.createElement("p");
    p.className = "muted";
    p.textContent = "Starting the test…";
    out.appendChild(p);
    try {
      const res = await fetch(button.getAttribute("formaction") || form.action, {
        method: "POST", body, credentials: "same-origin",
        headers: { "X-UI-Fragment": "test", "Content-Type": "application/x-www-form-urlencoded" },
      });
      const doc = new DOMParser().parseFromString(await res.text(), "text/html");
      out.replaceChildren(...Array.from(doc.body.childNodes).map((n) => document.importNode(n, true)));
      enhance(out);
    } catch (e) {
      p.textContent = "The test could not be started: " + e.message;
    } finally {
      button.disabled = false;
    }
    return true;
  };

  const enhance = (scope) => {
    localTimes(scope);
    if (scope.matches && scope.matches("[data-poll]")) poll(scope);
    for (const el of scope.querySelectorAll("[data-poll]")) poll(el);
  };

  document.addEventListener("click", async (ev) => {
    const t = ev.target.closest("button");
    if (!t) return;
    if (t.dataset.addRow) { ev.preventDefault(); addRow(t); return; }
    if (t.hasAttribute("data-remove-row")) {
      ev.preventDefault();
      const row = t.closest(".kv");
      if (row) row.remove();
      return;
    }
    if (t.dataset.copy) {
      ev.preventDefault();
      const src = document.getElementById(t.dataset.copy);
      if (!src) return;
      try {
        await navigator.clipboard.writeText(src.textContent.trim());
        const was = t.textContent;
        t.textContent = "Copied";
        setTimeout(() => { t.textContent = was; }, 1500);
      } catch (e) { /* no clipboard permission: the text stays selectable */ }
      return;
    }
    if (t.hasAttribute("data-test-button") && t.form) {
      ev.preventDefault();
      await runTest(t.form, t);
    }
  });

  document.addEventListener("change", (ev) => {
    const s = ev.target;
    if (s.matches && s.matches("select[data-autosubmit]") && s.form) s.form.requestSubmit();
  });

  const start = () => {
    enhance(document);
    const alert = document.getElementById("error-summary");
    if (alert) alert.focus();
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
