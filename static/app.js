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
  // The recordings timeline: click to play from a moment (and on across
  // segments), drag to select a stretch to export.
  const bar = document.getElementById("timeline");
  const dataEl = document.getElementById("play-data");
  if (bar && dataEl) {
    const data = JSON.parse(dataEl.textContent);
    const items = data.items || [];
    const video = document.getElementById("player");
    const cursor = document.getElementById("cursor");
    const sel = document.getElementById("selection");
    const now = document.getElementById("now");
    const link = document.getElementById("export-link");
    const span = data.to_ms - data.from_ms;
    const fmt = new Intl.DateTimeFormat(undefined, { timeZone: data.tz, hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
    const pct = function (t) { return Math.max(0, Math.min(100, 100 * (t - data.from_ms) / span)); };
    const at = function (x) {
      const r = bar.getBoundingClientRect();
      return data.from_ms + span * Math.max(0, Math.min(1, (x - r.left) / r.width));
    };
    let current = -1;
    let offset = 0;
    const show = function (t) {
      cursor.hidden = false;
      cursor.style.left = pct(t) + "%";
      now.textContent = fmt.format(new Date(t));
    };
    const playFrom = function (t) {
      // The segment holding t, else the next one after it.
      let i = items.findIndex(function (s) { return t < s.end_ms; });
      if (i < 0) { now.textContent = "Nothing recorded after that."; return; }
      if (t < items[i].start_ms) { t = items[i].start_ms; }
      current = i;
      offset = (t - items[i].start_ms) / 1000;
      video.dataset.segment = String(items[i].id);
      video.src = "/recordings/" + items[i].id;
      video.play().catch(function () { /* autoplay refused: the controls remain */ });
      show(t);
    };
    video.addEventListener("loadedmetadata", function () {
      if (offset > 0 && offset < video.duration) { video.currentTime = offset; }
      offset = 0;
    });
    video.addEventListener("timeupdate", function () {
      if (current >= 0) { show(items[current].start_ms + video.currentTime * 1000); }
    });
    video.addEventListener("ended", function () {
      // Play on across the segment boundary (and across a gap).
      if (current + 1 < items.length) { playFrom(items[current + 1].start_ms); }
    });
    let down = null;
    bar.addEventListener("mousedown", function (e) { down = e.clientX; e.preventDefault(); });
    bar.addEventListener("mousemove", function (e) {
      if (down === null || Math.abs(e.clientX - down) < 5) { return; }
      const a = Math.min(at(down), at(e.clientX)), b = Math.max(at(down), at(e.clientX));
      sel.hidden = false;
      sel.style.left = pct(a) + "%";
      sel.style.width = (pct(b) - pct(a)) + "%";
    });
    window.addEventListener("mouseup", function (e) {
      if (down === null) { return; }
      const x0 = down;
      down = null;
      if (Math.abs(e.clientX - x0) < 5) { sel.hidden = true; link.hidden = true; playFrom(at(e.clientX)); return; }
      const a = Math.min(at(x0), at(e.clientX)), b = Math.max(at(x0), at(e.clientX));
      const iso = function (t) { return new Date(Math.round(t / 1000) * 1000).toISOString().replace(".000Z", "Z"); };
      link.href = "/api/v1/devices/" + data.device + "/recordings/export?from=" + encodeURIComponent(iso(a)) + "&to=" + encodeURIComponent(iso(b));
      link.textContent = "Export " + fmt.format(new Date(a)) + "–" + fmt.format(new Date(b));
      link.hidden = false;
      const f = document.getElementById("export-from"), t = document.getElementById("export-to");
      if (f && t) { f.value = fmt.format(new Date(a)); t.value = fmt.format(new Date(b)); }
    });
    bar.addEventListener("keydown", function (e) {
      if (e.key === "Enter" || e.key === " ") { playFrom(items.length ? items[0].start_ms : data.from_ms); e.preventDefault(); }
    });
    document.querySelectorAll("a.play-at").forEach(function (a) {
      a.addEventListener("click", function (e) { e.preventDefault(); playFrom(Number(a.dataset.at)); });
    });
  }
})();
