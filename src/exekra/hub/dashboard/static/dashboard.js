/* Exekra dashboard: charts, copy buttons, confirmations, log following, JSON checks. No inline scripts. */
(function () {
  "use strict";

  function drawCharts(root) {
    if (typeof window.Chart === "undefined") return;
    root.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      if (window.Chart.getChart(canvas)) return;
      var source = document.getElementById(canvas.dataset.chart);
      if (source) new window.Chart(canvas, JSON.parse(source.textContent));
    });
  }

  function destroyCharts(root) {
    if (typeof window.Chart === "undefined" || !root.querySelectorAll) return;
    var canvases = Array.prototype.slice.call(root.querySelectorAll("canvas[data-chart]"));
    if (root.matches && root.matches("canvas[data-chart]")) canvases.push(root);
    canvases.forEach(function (canvas) {
      var chart = window.Chart.getChart(canvas);
      if (chart) chart.destroy();
    });
  }

  /* The log follows new lines while the reader is at its end; scrolling up stops that. */
  function logBox() { return document.getElementById("log-lines"); }

  function atEnd(box) { return box.scrollTop + box.clientHeight >= box.scrollHeight - 24; }

  function followLog() {
    var box = logBox();
    if (box && box.dataset.follow === "true") box.scrollTop = box.scrollHeight;
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.appendChild(area);
      area.select();
      var ok = document.execCommand("copy");
      document.body.removeChild(area);
      if (ok) resolve(); else reject(new Error("copy refused"));
    });
  }

  function selectText(element) {
    var range = document.createRange();
    range.selectNodeContents(element);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  function checkJson(area) {
    var target = document.getElementById(area.dataset.jsonCheck);
    if (!target) return;
    try {
      JSON.parse(area.value);
      target.textContent = "Valid JSON (the hub checks the workflow rules when you save).";
      target.className = "hint ok";
    } catch (error) {
      target.textContent = "Not valid JSON yet: " + error.message;
      target.className = "hint bad";
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawCharts(document);
    var box = logBox();
    if (box) {
      box.addEventListener("scroll", function () { box.dataset.follow = atEnd(box) ? "true" : "false"; });
      followLog();
    }
    document.querySelectorAll("textarea[data-json-check]").forEach(function (area) {
      area.addEventListener("input", function () { checkJson(area); });
      checkJson(area);
    });
  });

  document.addEventListener("htmx:beforeSwap", function (event) { destroyCharts(event.detail.target); });
  document.addEventListener("htmx:afterSettle", function () { drawCharts(document); followLog(); });
  document.addEventListener("htmx:oobAfterSwap", followLog);

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (!button) return;
    var source = document.getElementById(button.dataset.copy);
    if (!source) return;
    var label = button.textContent;
    copyText(source.textContent.trim()).then(function () {
      button.textContent = "Copied";
      button.dataset.copied = "true";
    }, function () {
      selectText(source);
      button.textContent = "Press Ctrl+C";
    }).then(function () {
      window.setTimeout(function () { button.textContent = label; }, 2500);
    });
  });

  /* A file input with data-read-into puts the chosen file's text into that field (the licence upload). */
  document.addEventListener("change", function (event) {
    var input = event.target;
    if (!input.dataset || !input.dataset.readInto || !input.files || !input.files[0]) return;
    var target = document.getElementById(input.dataset.readInto);
    if (target) input.files[0].text().then(function (text) { target.value = text; });
  });

  document.addEventListener("submit", function (event) {
    var message = event.target.dataset.confirm;
    if (message && !window.confirm(message)) event.preventDefault();
  });
})();
