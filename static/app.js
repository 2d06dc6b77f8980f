// camfleet: small progressive enhancements; every page works without them.
"use strict";
(function () {
  // The navigation folds into a menu button on narrow screens (without
  // script it wraps instead).
  document.documentElement.classList.add("js");
  const toggle = document.querySelector(".nav-toggle");
  const nav = document.getElementById("main-nav");
  if (toggle && nav) {
    toggle.addEventListener("click", function () {
      const open = nav.classList.toggle("open");
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
    });
  }
  // "Select all" in the device list.
  const all = document.getElementById("select-all");
  if (all) {
    all.addEventListener("change", function () {
      document.querySelectorAll("input[name=device]").forEach(function (c) { c.checked = all.checked; });
    });
  }
  // Tick every alert on the page.
  const allAlerts = document.getElementById("select-all-alerts");
  if (allAlerts) {
    allAlerts.addEventListener("change", function () {
      document.querySelectorAll("input[name=alert]").forEach(function (c) { c.checked = allAlerts.checked; });
    });
  }
  // Unresolved alerts in the navigation (and the dashboard's panel), kept
  // current over server-sent events.
  const badge = document.getElementById("alert-badge");
  if (badge && window.EventSource) {
    const es = new EventSource(badge.dataset.events);
    es.addEventListener("summary", function (e) {
      const s = JSON.parse(e.data);
      const n = s.open + s.acknowledged;
      badge.textContent = String(n);
      badge.hidden = n === 0;
      badge.classList.toggle("critical", s.critical > 0);
      badge.title = s.open + " open, " + s.acknowledged + " acknowledged; " + s.critical + " critical";
      document.querySelectorAll("[data-alerts]").forEach(function (el) {
        const v = s[el.dataset.alerts];
        if (typeof v === "number") { el.textContent = String(v); }
      });
      // The dashboard: when the number of cameras that need someone
      // changes, its panels are fetched again (the list, why, since when).
      const attention = document.getElementById("attention");
      if (attention && attention.dataset.problems !== String(s.problems)) {
        attention.dataset.problems = String(s.problems);
        fetch(window.location.pathname, { headers: { Accept: "text/html" }, credentials: "same-origin" })
          .then(function (r) { return r.ok ? r.text() : null; })
          .then(function (html) {
            if (!html) { return; }
            const fresh = new DOMParser().parseFromString(html, "text/html").getElementById("attention");
            if (fresh) { attention.innerHTML = fresh.innerHTML; attention.dataset.problems = fresh.dataset.problems; }
          })
          .catch(function () {});
      }
    });
    window.addEventListener("pagehide", function () { es.close(); });
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
  // Live view: fragmented MP4 into Media Source Extensions; kept near the
  // live edge; stopped while the tab is hidden (the server closes a
  // camera's stream when its last viewer leaves). One camera: one response;
  // a grid: one response carrying every tile (browsers open six HTTP/1.1
  // connections per server at most).
  const u32 = function (b, i) { return ((b[i] << 24) >>> 0) + (b[i + 1] << 16) + (b[i + 2] << 8) + b[i + 3]; };
  const hex2 = function (n) { return ("0" + n.toString(16)).slice(-2); };
  // The codec string from an init segment's avcC or hvcC box.
  const codecOf = function (b) {
    for (let i = 4; i + 8 < b.length; i++) {
      if (b[i] === 0x61 && b[i + 1] === 0x76 && b[i + 2] === 0x63 && b[i + 3] === 0x43) { // avcC
        return "avc1." + hex2(b[i + 5]) + hex2(b[i + 6]) + hex2(b[i + 7]);
      }
      if (b[i] === 0x68 && b[i + 1] === 0x76 && b[i + 2] === 0x63 && b[i + 3] === 0x43) { // hvcC
        const p = b[i + 5], space = ["", "A", "B", "C"][p >> 6], tier = (p & 0x20) ? "H" : "L";
        let compat = u32(b, i + 6), rev = 0;
        for (let k = 0; k < 32; k++) { rev = (rev << 1) | (compat & 1); compat >>>= 1; }
        return "hvc1." + space + (p & 0x1f) + "." + (rev >>> 0).toString(16) + "." + tier + b[i + 16] + ".B0";
      }
    }
    return null;
  };
  // The length of the leading ftyp+moov, once both are in.
  const initLength = function (b) {
    let i = 0;
    while (i + 8 <= b.length) {
      const size = u32(b, i), type = String.fromCharCode(b[i + 4], b[i + 5], b[i + 6], b[i + 7]);
      if (size < 8 || i + size > b.length) { return 0; }
      i += size;
      if (type === "moov") { return i; }
    }
    return 0;
  };
  const join = function (a, b) { const j = new Uint8Array(a.length + b.length); j.set(a); j.set(b, a.length); return j; };
  // One <video> fed with MP4 bytes; `reset` starts a new MediaSource.
  const makeSink = function (video) {
    const fig = video.closest("figure");
    const status = fig ? fig.querySelector(".live-status") : null;
    const sink = { say: function (t) { if (status) { status.textContent = t; } } };
    let ms = null, sb = null, head = new Uint8Array(0), queue = [], failed = false;
    const pump = function () {
      if (!sb || sb.updating || !queue.length || ms.readyState !== "open") { return; }
      const end = sb.buffered.length ? sb.buffered.end(sb.buffered.length - 1) : 0;
      if (end - video.currentTime > 2) { video.currentTime = end - 0.3; } // keep at the live edge
      if (video.currentTime > 60 && sb.buffered.length && sb.buffered.start(0) < video.currentTime - 30) {
        sb.remove(0, video.currentTime - 20); return; // bounded memory
      }
      sb.appendBuffer(queue.shift());
    };
    sink.reset = function () {
      sb = null; head = new Uint8Array(0); queue = []; failed = false;
      ms = new MediaSource();
      video.src = URL.createObjectURL(ms);
      return new Promise(function (ok) { ms.addEventListener("sourceopen", ok, { once: true }); });
    };
    // false: this tile cannot go on (an unsupported codec, a broken buffer).
    sink.push = function (bytes) {
      if (failed) { return false; }
      if (!sb) {
        head = join(head, bytes);
        const n = initLength(head);
        if (!n) { return true; }
        const codec = codecOf(head.subarray(0, n));
        const type = 'video/mp4; codecs="' + codec + '"';
        if (!codec || !MediaSource.isTypeSupported(type) || ms.readyState !== "open") {
          sink.say("(this browser cannot play " + (codec || "this codec") + ")"); failed = true; return false;
        }
        sb = ms.addSourceBuffer(type);
        sb.mode = "segments";
        sb.addEventListener("updateend", function () {
          if (video.buffered.length && video.currentTime < video.buffered.start(0)) { video.currentTime = video.buffered.start(0); }
          if (video.paused && video.autoplay) { video.play().catch(function () { /* muted autoplay refused */ }); }
          pump();
        });
        sb.addEventListener("error", function () { failed = true; });
        queue.push(head);
        sink.say("live");
      } else {
        queue.push(bytes);
      }
      if (queue.length > 200) { sink.say("(falling behind)"); return false; } // a reconnect resumes at a keyframe
      pump();
      return true;
    };
    return sink;
  };
  // Fetch `url` for the sinks; `demux` splits the body into (tile, bytes).
  const liveDriver = function (url, sinks, demux) {
    if (!window.MediaSource || !window.fetch) { sinks.forEach(function (k) { k.say("(this browser cannot play live video)"); }); return; }
    let ctrl = null, timer = null, wait = 1000;
    const stop = function () { if (ctrl) { ctrl.abort(); ctrl = null; } if (timer) { clearTimeout(timer); timer = null; } };
    const again = function () { stop(); if (!document.hidden) { timer = setTimeout(run, wait); wait = Math.min(wait * 2, 30000); } };
    const run = async function () {
      stop();
      const my = new AbortController();
      ctrl = my;
      await Promise.all(sinks.map(function (k) { return k.reset(); }));
      sinks.forEach(function (k) { k.say("connecting…"); });
      try {
        const resp = await fetch(url, { signal: my.signal, credentials: "same-origin", cache: "no-store" });
        if (!resp.ok) {
          const why = "(" + ((await resp.text()) || "HTTP " + resp.status).slice(0, 200) + ")";
          sinks.forEach(function (k) { k.say(why); });
          wait = Math.max(wait, resp.status === 503 ? 10000 : 60000);
          again();
          return;
        }
        const reader = resp.body.getReader();
        let broken = false;
        const feed = demux();
        for (;;) {
          const r = await reader.read();
          if (r.done) { break; }
          feed(r.value, function (tile, bytes) { if (sinks[tile] && !sinks[tile].push(bytes)) { broken = broken || sinks.length === 1; } },
            function (tile, text) { if (sinks[tile]) { sinks[tile].say("(" + text + ")"); } });
          if (broken) { break; }
          wait = 1000;
        }
        sinks.forEach(function (k) { k.say("(stream ended; reconnecting)"); });
      } catch (e) {
        if (my.signal.aborted) { return; }
        sinks.forEach(function (k) { k.say("(" + (e && e.message ? e.message : "stream failed") + "; reconnecting)"); });
      }
      if (ctrl === my) { again(); }
    };
    document.addEventListener("visibilitychange", function () {
      if (document.hidden) { stop(); sinks.forEach(function (k) { k.say("(paused while hidden)"); }); } else { wait = 1000; run(); }
    });
    window.addEventListener("pagehide", stop);
    run();
  };
  // One camera: the body is its MP4.
  document.querySelectorAll("video.live-view[data-src]").forEach(function (v) {
    liveDriver(v.dataset.src, [makeSink(v)], function () { return function (chunk, media) { media(0, chunk); }; });
  });
  // A grid: frames of [kind, tile, length u32] + payload (kind 0 MP4, 1 a message).
  const grid = document.querySelector(".live-grid[data-mux]");
  if (grid) {
    const sinks = Array.prototype.map.call(grid.querySelectorAll("video.live-view"), makeSink);
    liveDriver(grid.dataset.mux, sinks, function () {
      let buf = new Uint8Array(0);
      return function (chunk, media, message) {
        buf = join(buf, chunk);
        let i = 0;
        while (buf.length - i >= 6) {
          const len = u32(buf, i + 2);
          if (buf.length - i - 6 < len) { break; }
          const body = buf.subarray(i + 6, i + 6 + len);
          if (buf[i] === 0) { media(buf[i + 1], body.slice()); } else { message(buf[i + 1], new TextDecoder().decode(body)); }
          i += 6 + len;
        }
        buf = buf.slice(i);
      };
    });
  }
})();
