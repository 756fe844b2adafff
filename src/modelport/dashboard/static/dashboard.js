// The dashboard's only script, and optional: every page reads and every form works without it.
// It previews a traffic split while it is edited (the sum, and whether it is one the daemon takes).
"use strict";

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
});
