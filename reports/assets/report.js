(function () {
  "use strict";
  var doc = document;
  doc.documentElement.classList.add("js");

  /* Filter boxes for the long tables: rows whose text does not contain every word are hidden. */
  var tables = doc.querySelectorAll("table[data-filter]");
  Array.prototype.forEach.call(tables, function (table) {
    var body = table.tBodies[0];
    if (!body || body.rows.length < 8) { return; }
    var box = doc.createElement("input");
    box.type = "search";
    box.className = "filter";
    box.placeholder = "Filter " + body.rows.length + " rows (space-separated words)";
    box.setAttribute("aria-label", "Filter the rows of the table below");
    var count = doc.createElement("span");
    count.className = "filter-count";
    var bar = doc.createElement("div");
    bar.className = "filter-bar no-print";
    bar.appendChild(box);
    bar.appendChild(count);
    table.parentNode.insertBefore(bar, table);
    var texts = null;
    box.addEventListener("input", function () {
      if (texts === null) {
        texts = Array.prototype.map.call(body.rows, function (r) { return r.textContent.toLowerCase(); });
      }
      var words = box.value.toLowerCase().split(/\s+/).filter(Boolean);
      var shown = 0;
      Array.prototype.forEach.call(body.rows, function (row, i) {
        var ok = words.every(function (w) { return texts[i].indexOf(w) !== -1; });
        row.hidden = !ok;
        if (ok) { shown += 1; }
      });
      count.textContent = words.length ? shown + " shown" : "";
    });
  });

  /* Printing: open every fold, then restore what the reader had. */
  window.addEventListener("beforeprint", function () {
    Array.prototype.forEach.call(doc.querySelectorAll("details:not([open])"), function (d) {
      d.setAttribute("data-print-opened", "");
      d.open = true;
    });
  });
  window.addEventListener("afterprint", function () {
    Array.prototype.forEach.call(doc.querySelectorAll("details[data-print-opened]"), function (d) {
      d.removeAttribute("data-print-opened");
      d.open = false;
    });
  });

  /* A link to something inside a closed fold opens the fold. */
  function reveal() {
    var id = decodeURIComponent(window.location.hash.slice(1));
    var el = id && doc.getElementById(id);
    while (el) {
      if (el.tagName === "DETAILS") { el.open = true; }
      el = el.parentElement;
    }
  }
  window.addEventListener("hashchange", reveal);
  reveal();
})();
