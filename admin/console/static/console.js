/* vb2po console: a little progressive enhancement over plain server-rendered pages.
   - a sign-in link carries the token in the URL fragment (#token=...), which browsers never send
     to a server: this script takes it out of the address bar and the history at once, then posts it
     like a typed token; the page never shows it;
   - parts of a page marked data-refresh are fetched again every data-every seconds (not while
     paused, hidden, or holding the keyboard focus), until they carry a data-done marker. */
(function () {
  "use strict";

  function signInFromLink() {
    var form = document.getElementById("sign-in");
    if (!form || location.hash.indexOf("#token=") !== 0) { return; }
    var token = decodeURIComponent(location.hash.slice("#token=".length));
    history.replaceState(null, "", location.pathname + location.search);
    var field = document.getElementById("token");
    field.value = token;
    var status = document.getElementById("sign-in-status");
    if (status) { status.textContent = status.getAttribute("data-signing-in"); }
    form.submit();
  }

  function refresher(box) {
    var url = box.getAttribute("data-refresh");
    var every = Math.max(1, parseInt(box.getAttribute("data-every") || "10", 10)) * 1000;
    var busy = false;
    var timer = null;

    function stop() { if (timer) { clearInterval(timer); timer = null; } }

    function tick() {
      if (busy || document.hidden || box.getAttribute("data-paused") === "true") { return; }
      if (box.contains(document.activeElement) && document.activeElement !== box) { return; }
      busy = true;
      fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" }, cache: "no-store" })
        .then(function (answer) {
          if (answer.status === 401) {
            location.href = "/console/sign-in?ended=1&next=" + encodeURIComponent(location.pathname);
            return null;
          }
          return answer.ok ? answer.text() : null;
        })
        .then(function (html) {
          if (html === null || html === undefined) { return; }
          box.innerHTML = html;
          var updated = box.querySelector("[data-updated-text]");
          var line = document.getElementById(box.getAttribute("data-updated") || "");
          if (updated && line) { line.textContent = updated.getAttribute("data-updated-text"); }
          if (box.querySelector("[data-done]")) {
            stop();
            if (box.hasAttribute("data-reload-when-done")) { location.reload(); }
          }
        })
        .catch(function () { /* the next tick tries again */ })
        .then(function () { busy = false; });
    }
    timer = setInterval(tick, every);
  }

  function pauseButtons() {
    document.querySelectorAll("[data-pause-for]").forEach(function (button) {
      var box = document.getElementById(button.getAttribute("data-pause-for"));
      button.addEventListener("click", function () {
        var paused = box.getAttribute("data-paused") !== "true";
        box.setAttribute("data-paused", paused ? "true" : "false");
        button.setAttribute("aria-pressed", paused ? "true" : "false");
        button.textContent = button.getAttribute(paused ? "data-resume" : "data-pause");
      });
    });
  }

  window.addEventListener("hashchange", signInFromLink);  // a link opened over the sign-in page itself
  document.addEventListener("DOMContentLoaded", function () {
    signInFromLink();
    document.querySelectorAll("[data-refresh]").forEach(refresher);
    pauseButtons();
  });
}());
