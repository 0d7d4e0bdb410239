// Sort a table by clicking a header, filter its rows with the box above it, enlarge a picture by
// clicking it. No network, no libraries.
(function () {
  "use strict";
  function cellValue(row, index) {
    var cell = row.cells[index];
    if (!cell) return null;
    var raw = cell.getAttribute("data-v");
    if (raw !== null) return raw === "" ? null : parseFloat(raw);
    return cell.textContent.trim().toLowerCase();
  }
  function compare(x, y, asc) {
    if (x === null && y === null) return 0;
    if (x === null) return 1;            // missing values last, either way
    if (y === null) return -1;
    var d = (typeof x === "number" && typeof y === "number") ? x - y : String(x).localeCompare(String(y));
    return asc ? d : -d;
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var headers = table.tHead ? table.tHead.rows[0].cells : [];
    Array.prototype.forEach.call(headers, function (th, index) {
      th.addEventListener("click", function () {
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        var asc = !th.classList.contains("sorted-asc");
        Array.prototype.forEach.call(headers, function (h) { h.classList.remove("sorted-asc", "sorted-desc"); });
        th.classList.add(asc ? "sorted-asc" : "sorted-desc");
        var keyed = rows.map(function (r, i) { return [cellValue(r, index), i, r]; });
        keyed.sort(function (a, b) { return compare(a[0], b[0], asc) || a[1] - b[1]; });
        var fragment = document.createDocumentFragment();
        keyed.forEach(function (k) { fragment.appendChild(k[2]); });
        body.appendChild(fragment);
      });
    });
  });
  document.querySelectorAll("input.filter").forEach(function (box) {
    var table = document.getElementById(box.getAttribute("data-table"));
    var counter = document.querySelector("[data-count='" + box.getAttribute("data-table") + "']");
    box.addEventListener("input", function () {
      var needle = box.value.toLowerCase();
      var shown = 0, rows = table.tBodies[0].rows;
      Array.prototype.forEach.call(rows, function (row) {
        var keep = row.textContent.toLowerCase().indexOf(needle) >= 0;
        row.style.display = keep ? "" : "none";
        if (keep) shown += 1;
      });
      if (counter) counter.textContent = needle ? shown + " of " + rows.length + " rows" : "";
    });
  });
  document.querySelectorAll(".card img").forEach(function (img) {
    img.addEventListener("click", function () { img.closest(".card").classList.toggle("big"); });
  });
})();
