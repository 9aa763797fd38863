// Collapsible task tree: which trees are folded survives the 2-second htmx refreshes.
(function () {
  "use strict";
  var KEY = "xoweb-folded-tasks";
  var folded;
  try { folded = new Set(JSON.parse(sessionStorage.getItem(KEY) || "[]")); } catch (e) { folded = new Set(); }

  function apply() {
    // Only a folded ancestor shown on this page hides a row: on a task's detail page, the task
    // itself (folded on the list) has no row, and its sub-tasks stay visible.
    var shown = new Set();
    document.querySelectorAll("button[data-toggle]").forEach(function (button) {
      shown.add(button.dataset.toggle);
    });
    document.querySelectorAll("tr[data-ancestors]").forEach(function (row) {
      var ancestors = row.dataset.ancestors.split(" ").filter(Boolean);
      row.hidden = ancestors.some(function (id) { return folded.has(id) && shown.has(id); });
    });
    document.querySelectorAll("button[data-toggle]").forEach(function (button) {
      var isFolded = folded.has(button.dataset.toggle);
      button.setAttribute("aria-expanded", String(!isFolded));
      button.textContent = isFolded ? "▸" : "▾";
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-toggle]");
    if (!button) return;
    var id = button.dataset.toggle;
    if (folded.has(id)) folded.delete(id); else folded.add(id);
    try { sessionStorage.setItem(KEY, JSON.stringify(Array.from(folded))); } catch (e) { /* private mode */ }
    apply();
  });
  document.addEventListener("htmx:afterSwap", apply);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", apply); else apply();
})();
