// Live updates for kintsugi ui. The server says on /events when entries
// arrive or when it locks; the first page of the timeline fetches itself
// again and swaps in the new list, any other page only says so. Nothing
// here is needed to read or write: without JavaScript, reloading shows
// the same.
"use strict";
(function () {
  var live = document.getElementById("live");
  function say(text) { if (live) { live.textContent = text; } }

  // The intensity slider shows its number as it moves.
  var slider = document.getElementById("w-intensity");
  var shown = document.getElementById("w-intensity-value");
  if (slider && shown) {
    slider.addEventListener("input", function () { shown.textContent = slider.value; });
  }

  if (!window.EventSource) { return; }
  var events = new EventSource("/events");
  events.addEventListener("locked", function () { window.location.reload(); });
  events.addEventListener("entries", function () {
    var list = document.getElementById("timeline");
    if (!list || !list.dataset.live) {
      say("Something new arrived. The timeline shows it.");
      return;
    }
    fetch(window.location.href, { credentials: "same-origin", cache: "no-store", headers: { "X-Kintsugi-Live": "1" } })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("timeline");
        if (!fresh) { window.location.reload(); return; }
        list.replaceChildren.apply(list, Array.prototype.slice.call(fresh.childNodes));
        say("Something new arrived; it is at the top.");
      })
      .catch(function () { say("Something new arrived. Reload the page to see it."); });
  });
})();
