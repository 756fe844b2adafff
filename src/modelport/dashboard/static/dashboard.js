// The dashboard's only script, and optional: every page reads and every form works without it.
// It previews a traffic split while it is edited (the sum, and whether it is one the daemon takes),
// and refreshes live traffic sections from their fragment URL every few seconds.
"use strict";

const LIVE_REFRESH_MS = 3000;

async function refreshLive(section) {
  const answer = await fetch(section.dataset.live, { credentials: "same-origin", headers: { accept: "text/html" } });
  if (!answer.ok) return section; // signed out or gone: keep what is shown, the next page read says why
  const parsed = new DOMParser().parseFromString(await answer.text(), "text/html");
  const fresh = parsed.querySelector("section[data-live]");
  if (!fresh) return section;
  section.replaceWith(fresh);
  return fresh;
}

document.addEventListener("DOMContentLoaded", () => {
  for (const form of document.querySelectorAll("form[data-traffic-form]")) {
    const inputs = [...form.querySelectorAll("input[type=number]")];
    const sum = form.querySelector("output[data-sum]");
    const show = () => {
      const total = inputs.reduce((acc, input) => acc + (Number.parseInt(input.value, 10) || 0), 0);
      sum.textContent = `sum ${total}%`;
      sum.classList.toggle("off", total !== 100 && total !== 0);
    };
    for (const input of inputs) input.addEventListener("input", show);
    show();
  }
  for (const first of document.querySelectorAll("section[data-live]")) {
    let section = first;
    const tick = async () => {
      try {
        section = await refreshLive(section);
      } catch {
        // the daemon is restarting or gone: try again at the next tick
      } finally {
        setTimeout(tick, LIVE_REFRESH_MS);
      }
    };
    setTimeout(tick, LIVE_REFRESH_MS);
  }
});
