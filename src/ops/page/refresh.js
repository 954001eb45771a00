(function () {
  "use strict";
  var every = (Number(document.body.dataset.refresh) || 10) * 1000;
  var banner = document.getElementById("stale");
  var updated = new Date();
  function failed(why) {
    document.body.classList.add("stale");
    banner.textContent = "Not updated since " + updated.toISOString().slice(11, 19) +
      " UTC (" + why + "): what follows may be out of date.";
  }
  function tick() {
    fetch(location.pathname + location.search, { credentials: "same-origin", cache: "no-store" })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.querySelector("main");
        if (!fresh) throw new Error("no page in the reply");
        document.querySelector("main").replaceWith(document.adoptNode(fresh));
        document.title = doc.title;
        document.body.classList.remove("stale");
        document.body.dataset.updates = (Number(document.body.dataset.updates) || 0) + 1;
        updated = new Date();
      })
      .catch(function (e) { failed(e.message || "unreachable"); })
      .then(function () { setTimeout(tick, every); });
  }
  setTimeout(tick, every);
})();
