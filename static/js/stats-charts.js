// Charts of the statistics pages, drawn from the data tables next to them (the tables are the
// fallback and the source: a chart never shows a figure its table does not). One series per chart,
// named on its axis, so that nothing depends on telling colours apart.
(function () {
  "use strict";

  function column(rows, index) {
    return rows.map(function (row) { return Number(row.cells[index].dataset.value || 0); });
  }

  function draw(canvas) {
    var table = document.getElementById(canvas.dataset.chartTable);
    var chooser = document.querySelector('select[data-chart-for="' + canvas.id + '"]');
    if (!table || !window.Chart) { return; }
    var rows = Array.prototype.slice.call(table.tBodies[0].rows);
    var heads = table.tHead.rows[0].cells;
    var labels = rows.map(function (row) { return row.cells[0].textContent.trim(); });
    var index = Number(chooser ? chooser.value : canvas.dataset.chartColumn || 1);
    var horizontal = canvas.dataset.chartAxis === "y";
    var valueAxis = { beginAtZero: true, title: { display: true, text: heads[index].textContent.trim() } };
    var chart = new window.Chart(canvas, {
      type: canvas.dataset.chartType || "bar",
      data: {
        labels: labels,
        datasets: [{
          label: heads[index].textContent.trim(),
          data: column(rows, index),
          backgroundColor: "rgba(13, 110, 253, 0.55)",
          borderColor: "rgb(13, 110, 253)",
          borderWidth: 1,
          pointStyle: "rectRot",
          pointRadius: 4
        }]
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        indexAxis: horizontal ? "y" : "x",
        plugins: { legend: { display: false } },
        scales: horizontal ? { x: valueAxis } : { y: valueAxis }
      }
    });
    if (chooser) {
      chooser.addEventListener("change", function () {
        var i = Number(chooser.value);
        var name = heads[i].textContent.trim();
        chart.data.datasets[0].data = column(rows, i);
        chart.data.datasets[0].label = name;
        (horizontal ? chart.options.scales.x : chart.options.scales.y).title.text = name;
        chart.update();
        canvas.setAttribute("aria-label", canvas.dataset.chartTitle + ": " + name);
      });
    }
    canvas.dataset.chartReady = "1";
  }

  function drawAll() {
    document.querySelectorAll("canvas[data-chart-table]").forEach(draw);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", drawAll);
  } else {
    drawAll();
  }
})();
