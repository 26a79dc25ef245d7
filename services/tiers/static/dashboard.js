// Draws the dashboard's charts from the figures the page carries (#dashboard-charts) with the vendored
// Chart.js. Animation is off so that a chart is complete when it is first painted. When the library is
// missing the tables still hold every figure; <body data-charts> says which happened: drawn or unavailable.
(function () {
  "use strict";
  var status = document.getElementById("charts-status");
  if (typeof window.Chart === "undefined") {
    document.body.dataset.charts = "unavailable";
    status.textContent = "Charts are unavailable: the chart library is not installed (make install). The tables hold every figure.";
    return;
  }
  var colors = ["#2f6fbf", "#d9822b", "#8a8f98", "#3a9a5b", "#a4508b"];
  var specs = JSON.parse(document.getElementById("dashboard-charts").textContent);
  Object.keys(specs).forEach(function (id) {
    var spec = specs[id];
    var canvas = document.getElementById(id);
    if (!canvas) { return; }
    var datasets = spec.datasets.map(function (set, index) {
      var color = colors[index % colors.length];
      return {
        label: set.label, data: set.data, backgroundColor: color, borderColor: color,
        fill: false, tension: 0, pointRadius: spec.type === "line" ? 2 : 0
      };
    });
    var valueAxis = spec.type === "line" ? { beginAtZero: true, max: 100 } : { beginAtZero: true, ticks: { precision: 0 } };
    new window.Chart(canvas, {
      type: spec.type,
      data: { labels: spec.labels, datasets: datasets },
      options: {
        animation: false, responsive: true, maintainAspectRatio: false,
        indexAxis: spec.horizontal ? "y" : "x",
        plugins: { legend: { display: datasets.length > 1 || spec.type === "line" } },
        scales: spec.horizontal ? { x: valueAxis } : { y: valueAxis }
      }
    });
  });
  document.body.dataset.charts = "drawn";
}());
