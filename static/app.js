// camfleet: small progressive enhancements; every page works without them.
"use strict";
(function () {
  // "Select all" in the device list.
  const all = document.getElementById("select-all");
  if (all) {
    all.addEventListener("change", function () {
      document.querySelectorAll("input[name=device]").forEach(function (c) { c.checked = all.checked; });
    });
  }
  // Live progress of a discovery run or adoption (server-sent events).
  const live = document.getElementById("live");
  if (live && live.dataset.busy === "1" && window.EventSource) {
    const es = new EventSource(live.dataset.events);
    const show = function (p) {
      document.getElementById("live-phase").textContent = p.phase || "";
      document.getElementById("live-text").textContent =
        (p.total ? p.done + " / " + p.total + " · " : "") + (p.found || 0) + " " + (live.dataset.foundLabel || "found") + (p.message ? " · " + p.message : "");
      const pct = p.total ? Math.min(100, Math.round(100 * p.done / p.total)) : 0;
      document.getElementById("live-bar").style.width = pct + "%";
    };
    es.addEventListener("progress", function (e) { show(JSON.parse(e.data)); });
    es.addEventListener("end", function (e) {
      es.close();
      try { show(JSON.parse(e.data)); } catch (_) { /* no body */ }
      window.location.reload();
    });
    es.onerror = function () { es.close(); };
  }
})();
