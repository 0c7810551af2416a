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
  // refresh fetches the page again and swaps in its timeline; news is
  // what to say once it is there ("" says nothing).
  function refresh(news) {
    var list = document.getElementById("timeline");
    fetch(window.location.href, { credentials: "same-origin", cache: "no-store", headers: { "X-Kintsugi-Live": "1" } })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("timeline");
        if (!fresh) { window.location.reload(); return; }
        list.replaceChildren.apply(list, Array.prototype.slice.call(fresh.childNodes));
        if (news) { say(news); }
      })
      .catch(function () { if (news) { say("Something new arrived. Reload the page to see it."); } });
  }
  function onTimeline() {
    var list = document.getElementById("timeline");
    return list && list.dataset.live;
  }
  events.addEventListener("entries", function () {
    if (onTimeline()) {
      refresh("Something new arrived; it is at the top.");
    } else {
      say("Something new arrived. The timeline shows it.");
    }
  });
  events.addEventListener("sync", function () {
    if (onTimeline()) { refresh(""); }
  });
})();
