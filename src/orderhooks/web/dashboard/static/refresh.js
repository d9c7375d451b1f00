// Auto-refresh: every REFRESH_MS, fetch this page again and swap in its live regions
// ([data-live] elements, matched by id). Forms are outside those regions, so typing is never
// lost. Pauses while the tab is hidden. Without JavaScript the pages still read fine.
(function () {
  "use strict";
  var REFRESH_MS = 15000;
  var STORAGE_KEY = "orderhooks.autoRefresh";
  var toggle = document.getElementById("auto-refresh");
  if (!toggle || !document.querySelector("[data-live]") || !window.fetch) {
    return;
  }
  toggle.parentElement.hidden = false;
  toggle.checked = window.localStorage.getItem(STORAGE_KEY) !== "off";
  toggle.addEventListener("change", function () {
    window.localStorage.setItem(STORAGE_KEY, toggle.checked ? "on" : "off");
  });

  function refresh() {
    if (!toggle.checked || document.hidden) {
      return;
    }
    fetch(window.location.href, { credentials: "same-origin", redirect: "manual" })
      .then(function (response) {
        if (response.type === "opaqueredirect") {
          // Only a page without a session redirects: load it for real, so the sign-in
          // page shows (and leads back here) instead of figures that no longer change.
          window.location.reload();
          return null;
        }
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (!html) {
          return;
        }
        var fresh = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live]").forEach(function (region) {
          var replacement = fresh.getElementById(region.id);
          // Keep open <details> open across the swap.
          if (replacement && !region.contains(document.activeElement)) {
            region.querySelectorAll("details[open]").forEach(function (open, index) {
              var twin = replacement.querySelectorAll("details")[index];
              if (twin) {
                twin.open = true;
              }
            });
            region.replaceWith(replacement);
          }
        });
      })
      .catch(function () {
        // A failed refresh (server restarting) leaves the page as it was.
      });
  }

  window.setInterval(refresh, REFRESH_MS);
})();
