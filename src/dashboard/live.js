// Live counters: /events sends every campaign's card as JSON when it changes; each element
// with data-campaign/data-field shows one value. No build step, no library.
(function () {
  "use strict";
  var status = document.getElementById("live-status");
  function show(state, text) {
    if (status) { status.dataset.state = state; status.textContent = text; }
  }
  function percent(x) { return Math.round(x * 100) + "%"; }
  function outcomes(o) {
    var keys = Object.keys(o || {}).sort();
    if (keys.length === 0) { return "\u2014"; }
    return keys.map(function (k) { return k + ": " + o[k]; }).join(", ");
  }
  function text(card, field) {
    var v = card[field];
    if (field === "answer_rate") { return percent(v); }
    if (field === "outcomes") { return outcomes(v); }
    if (field === "next" && v === null && card.due_now > 0) { return "now"; }
    if (v === null || v === undefined) { return "\u2014"; }
    return String(v);
  }
  var updates = 0;
  var source = new EventSource("/events");
  source.addEventListener("open", function () { show("live", "live"); });
  source.addEventListener("error", function () { show("offline", "reconnecting…"); });
  source.addEventListener("campaigns", function (e) {
    var cards = JSON.parse(e.data);
    cards.forEach(function (card) {
      var sel = '[data-campaign="' + CSS.escape(card.name) + '"]';
      document.querySelectorAll(sel).forEach(function (el) {
        var t = text(card, el.dataset.field);
        if (el.textContent !== t) {
          el.textContent = t;
          if (el.dataset.field === "state") {
            el.className = "state state-" + card.state.replace(/ /g, "-");
          }
        }
      });
    });
    updates += 1;
    document.body.dataset.liveUpdates = String(updates);
    show("live", "live");
  });
})();
