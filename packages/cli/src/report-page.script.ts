/**
 * The report page's script and style, as text: the page is one file opened from disk
 * (file://, no server), so everything it does (lazy rendering, sort, filter, keeper
 * changes, export, the group view) runs here on the JSON embedded in the page.
 * Plain ES5-style JS on purpose: no template literals (this is itself a template), no build.
 */
export const REPORT_CSS = String.raw`
*{box-sizing:border-box}
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f6f6f4;color:#222}
header{padding:16px 24px 8px;background:#fff;border-bottom:1px solid #ddd;position:sticky;top:0;z-index:5}
h1{font-size:20px;margin:0 0 4px}
.meta{color:#555;margin-bottom:8px}
.totals b{font-variant-numeric:tabular-nums}
.toolbar{display:flex;flex-wrap:wrap;gap:10px;align-items:center;margin:8px 0 4px}
.toolbar label{font-size:13px;color:#444}
.toolbar input[type=search]{width:220px}
button{font:inherit;font-size:13px;padding:3px 10px;border:1px solid #bbb;border-radius:5px;background:#fafafa;cursor:pointer}
button:hover{background:#eee}
main{padding:16px 24px}
.group{background:#fff;border:1px solid #ddd;border-radius:8px;padding:10px 14px;margin:0 0 14px}
.group.undecided{border-color:#ddd}
.group.keep-all,.group.not-duplicates{opacity:.6}
.group h2{font-size:15px;margin:0 0 2px;display:flex;flex-wrap:wrap;gap:8px;align-items:baseline}
.group h2 .facts{font-weight:normal;color:#555;font-size:13px}
.group .why{font-size:13px;color:#1a6b3c;margin:0 0 8px}
.group .decision{margin-left:auto;display:flex;gap:6px}
.row{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}
.member{margin:0;width:220px;border:2px solid transparent;border-radius:6px;padding:4px}
.member.keep{border-color:#2a9d5c}
.member.remove{border-color:#d9534f;background:#fff6f5}
.frame{position:relative;display:inline-block;line-height:0;border:1px solid #ccc;background:#eee}
.frame img{display:block;max-width:208px;max-height:208px}
.frame svg{position:absolute;inset:0;width:100%;height:100%;overflow:hidden;pointer-events:none}
polygon{fill:rgba(255,60,60,.12);stroke:#e02020;stroke-width:2;vector-effect:non-scaling-stroke}
figcaption{font-size:12px;margin-top:4px}
figcaption .path{font-weight:600;word-break:break-all}
figcaption .score{font-variant-numeric:tabular-nums;color:#333}
figcaption .ctl{display:flex;gap:8px;align-items:center;margin-top:3px;flex-wrap:wrap}
#more{height:40px}
.empty{color:#666}
#viewer{position:fixed;inset:0;background:#1b1b1b;z-index:10;display:flex;flex-direction:column;padding:16px;color:#eee}
#viewer[hidden]{display:none}
#viewer .panes{display:flex;gap:16px;flex:1;min-height:0}
#viewer .pane{flex:1;display:flex;flex-direction:column;align-items:center;min-width:0}
#viewer .frame{border-color:#555}
#viewer .frame img{max-width:calc(50vw - 40px);max-height:calc(100vh - 150px)}
#viewer .bar{display:flex;gap:12px;align-items:center;margin-bottom:10px}
#viewer .cap{font-size:13px;margin-top:6px;text-align:center;word-break:break-all}
`;

export const REPORT_SCRIPT = String.raw`
(function () {
  'use strict';
  var D = JSON.parse(document.getElementById('doppel-data').textContent);
  var PAGE = 20;
  var byId = {};
  var state = {};
  D.groups.forEach(function (g) {
    byId[g.id] = g;
    var keep = {}; keep[g.keeper] = true;
    state[g.id] = { decision: 'remove', keeper: g.keeper, keep: keep, changed: false };
  });
  var $ = function (id) { return document.getElementById(id); };
  var list = $('groups');
  var view = [];
  var rendered = 0;

  function esc(s) { return String(s).replace(/[&<>"']/g, function (c) { return '&#' + c.charCodeAt(0) + ';'; }); }
  function fmtBytes(n) {
    if (n < 1000) return n + ' B';
    var u = ['kB', 'MB', 'GB', 'TB'], v = n / 1000, i = 0;
    while (v >= 1000 && i < u.length - 1) { v /= 1000; i++; }
    return v.toFixed(v < 10 ? 1 : 0) + ' ' + u[i];
  }
  function folderOf(p) { var i = p.lastIndexOf('/'); return i < 0 ? '.' : p.slice(0, i); }
  function day(ms) { return new Date(ms).toISOString().slice(0, 10); }
  function link(g, a, b) {
    var best = null;
    g.pairs.forEach(function (p) {
      if ((p.query === a && p.match === b) || (p.query === b && p.match === a)) { if (!best || p.score > best.score) best = p; }
    });
    return best;
  }
  // Where image 'a' lies inside image 'b' (a's corners in b's normalised coordinates).
  function regionOf(g, a, b) {
    var p = link(g, a, b);
    if (!p) return null;
    if (p.query === a && p.match === b) return p.region || null;
    return p.inverse_region || null;
  }
  function polygon(region) {
    if (!region) return '';
    return '<svg viewBox="0 0 1 1" preserveAspectRatio="none"><polygon points="' + region.map(function (q) { return q[0] + ',' + q[1]; }).join(' ') + '"/></svg>';
  }
  function thumb(p) { return D.thumbs[p] || ''; }
  function facts(p) {
    var f = D.images[p];
    if (!f) return 'facts unavailable';
    var q = f.format === 'jpeg' && f.jpeg_quality ? ' q~' + f.jpeg_quality : '';
    return f.width + 'x' + f.height + ' · ' + fmtBytes(f.bytes) + ' · ' + f.format + q + ' · ' + day(f.mtime_ms);
  }
  function removed(g) {
    var s = state[g.id];
    if (s.decision !== 'remove') return [];
    return g.members.filter(function (m) { return !s.keep[m]; });
  }
  function reclaim(g) { return removed(g).reduce(function (n, m) { return n + (D.images[m] ? D.images[m].bytes : 0); }, 0); }

  function renderGroup(g) {
    var s = state[g.id];
    var sec = document.createElement('section');
    sec.className = 'group ' + s.decision;
    sec.setAttribute('data-group', g.id);
    sec.setAttribute('data-size', g.members.length);
    sec.setAttribute('data-reclaim', reclaim(g));
    sec.setAttribute('data-min-score', g.min_score);
    var why = s.changed ? 'keeper chosen by you' : 'suggested keeper: ' + g.keeper_reason;
    if (s.decision === 'keep-all') why = 'keep all: nothing moves (remembered by doppel apply)';
    if (s.decision === 'not-duplicates') why = 'not duplicates: nothing moves (remembered by doppel apply)';
    var html = '<h2>Group ' + g.id + ' <span class="facts">' + g.members.length + ' images · reclaim <b class="reclaim">' + fmtBytes(reclaim(g)) +
      '</b> · lowest score ' + g.min_score.toFixed(3) + ' · ' + g.methods.join(', ') + '</span>' +
      '<span class="decision"><button data-act="not-duplicates">Not duplicates</button><button data-act="keep-all">Keep all</button>' +
      '<button data-act="remove">' + (s.decision === 'remove' ? 'Reset' : 'Undo decision') + '</button></span></h2>' +
      '<p class="why">' + esc(why) + '</p><div class="row">';
    g.members.forEach(function (m) {
      var isKeeper = m === s.keeper;
      var keepIt = s.decision !== 'remove' || !!s.keep[m];
      var l = isKeeper ? null : link(g, s.keeper, m);
      var score = isKeeper ? '<b>keeper</b>' : l ? '<span class="score">score ' + l.score.toFixed(3) + ' · ' + l.inliers + ' inliers' + (l.method ? ' · ' + l.method : '') + '</span>' : '<span class="score">linked through another member</span>';
      html += '<figure class="member ' + (keepIt ? 'keep' : 'remove') + (isKeeper ? ' anchor keeper' : '') + '" data-path="' + esc(m) + '"' + (l ? ' data-score="' + l.score + '" data-inliers="' + l.inliers + '"' : '') + '>' +
        '<div class="frame"><img loading="lazy" alt="' + esc(m) + '" src="' + esc(thumb(m)) + '">' + (isKeeper ? '' : polygon(regionOf(g, s.keeper, m))) + '</div>' +
        '<figcaption><span class="path">' + esc(m) + '</span><br>' + esc(facts(m)) + '<br>' + score +
        '<span class="ctl"><label><input type="radio" name="keeper-' + g.id + '" value="' + esc(m) + '"' + (isKeeper ? ' checked' : '') + '> keeper</label>' +
        '<label><input type="checkbox" class="mark"' + (keepIt ? '' : ' checked') + (isKeeper || s.decision !== 'remove' ? ' disabled' : '') + '> move away</label>' +
        (isKeeper ? '' : '<button data-compare="' + esc(m) + '">compare</button>') + '</span></figcaption></figure>';
    });
    sec.innerHTML = html + '</div>';
    return sec;
  }

  function matches(g, method, folder, needle) {
    if (method && g.methods.indexOf(method) < 0) return false;
    if (folder && !g.members.some(function (m) { return folderOf(m) === folder; })) return false;
    if (needle && !g.members.some(function (m) { return m.toLowerCase().indexOf(needle) >= 0; })) return false;
    return true;
  }
  var sorters = {
    reclaim: function (a, b) { return reclaim(b) - reclaim(a) || a.id - b.id; },
    size: function (a, b) { return b.members.length - a.members.length || a.id - b.id; },
    score: function (a, b) { return a.min_score - b.min_score || a.id - b.id; },
    folder: function (a, b) { var x = folderOf(a.members[0]), y = folderOf(b.members[0]); return x < y ? -1 : x > y ? 1 : a.id - b.id; },
    id: function (a, b) { return a.id - b.id; }
  };

  function refresh() {
    var method = $('method').value, folder = $('folder').value, needle = $('search').value.trim().toLowerCase();
    view = D.groups.filter(function (g) { return matches(g, method, folder, needle); }).sort(sorters[$('sort').value] || sorters.reclaim);
    list.innerHTML = '';
    rendered = 0;
    $('shown').textContent = view.length;
    $('empty').hidden = view.length > 0;
    renderMore();
    totals();
  }
  function renderMore() {
    var end = Math.min(view.length, rendered + PAGE);
    var frag = document.createDocumentFragment();
    for (; rendered < end; rendered++) frag.appendChild(renderGroup(view[rendered]));
    list.appendChild(frag);
  }
  function rerender(id) {
    var old = list.querySelector('section[data-group="' + id + '"]');
    if (old) old.replaceWith(renderGroup(byId[id]));
    totals();
  }
  function totals() {
    var files = 0, bytes = 0;
    D.groups.forEach(function (g) { var r = removed(g); files += r.length; bytes += reclaim(g); });
    $('sel-files').textContent = files;
    $('sel-bytes').textContent = fmtBytes(bytes);
  }

  // Lazy rendering: the next pages of groups while the sentinel is near the viewport.
  // The observer only reports changes, so keep rendering until the sentinel is pushed out.
  function nearEnd() { return $('more').getBoundingClientRect().top < window.innerHeight + 800; }
  function fill() { while (rendered < view.length && nearEnd()) renderMore(); }
  if ('IntersectionObserver' in window) {
    new IntersectionObserver(function (entries) {
      if (entries.some(function (e) { return e.isIntersecting; })) fill();
    }, { rootMargin: '800px' }).observe($('more'));
  }
  window.addEventListener('scroll', function () { if (rendered < view.length && nearEnd()) fill(); }, { passive: true });

  list.addEventListener('change', function (ev) {
    var t = ev.target, sec = t.closest('section.group');
    if (!sec) return;
    var g = byId[sec.getAttribute('data-group')], s = state[g.id];
    if (t.type === 'radio') {
      delete s.keep[s.keeper];
      s.keeper = t.value;
      s.keep[t.value] = true;
      s.changed = true;
    } else if (t.classList.contains('mark')) {
      var m = t.closest('figure').getAttribute('data-path');
      if (t.checked) delete s.keep[m]; else s.keep[m] = true;
    }
    rerender(g.id);
  });
  list.addEventListener('click', function (ev) {
    var t = ev.target, sec = t.closest('section.group');
    if (!sec || t.tagName !== 'BUTTON') return;
    var g = byId[sec.getAttribute('data-group')];
    if (t.getAttribute('data-compare')) { openViewer(g, t.getAttribute('data-compare')); return; }
    var act = t.getAttribute('data-act');
    if (act) {
      var s = state[g.id];
      if (act === 'remove' && s.decision === 'remove') { var k = {}; k[g.keeper] = true; state[g.id] = { decision: 'remove', keeper: g.keeper, keep: k, changed: false }; }
      else s.decision = act;
      rerender(g.id);
    }
  });
  ['sort', 'method', 'folder'].forEach(function (id) { $(id).addEventListener('change', refresh); });
  $('search').addEventListener('input', refresh);

  // Export: what doppel apply reads (JSON), and a CSV for spreadsheets.
  function actions() {
    var files = {};
    var groups = D.groups.map(function (g) {
      var s = state[g.id];
      g.members.forEach(function (m) { var f = D.images[m]; if (f) files[m] = { bytes: f.bytes, mtime_ms: f.mtime_ms }; });
      var rem = removed(g);
      return { group: g.id, decision: s.decision, keep: g.members.filter(function (m) { return rem.indexOf(m) < 0; }), remove: rem };
    });
    return { kind: 'doppel-actions', version: 1, root: D.meta.root, report_generated_at: D.meta.generated_at, groups: groups, files: files };
  }
  function csvCell(v) { v = String(v); return /[",\n]/.test(v) ? '"' + v.replace(/"/g, '""') + '"' : v; }
  function csv(a) {
    var rows = [['group', 'decision', 'action', 'relative_path', 'bytes', 'mtime_ms']];
    a.groups.forEach(function (g) {
      g.keep.forEach(function (m) { var f = a.files[m] || {}; rows.push([g.group, g.decision, 'keep', m, f.bytes, f.mtime_ms]); });
      g.remove.forEach(function (m) { var f = a.files[m] || {}; rows.push([g.group, g.decision, 'move', m, f.bytes, f.mtime_ms]); });
    });
    return rows.map(function (r) { return r.map(csvCell).join(','); }).join('\n') + '\n';
  }
  function download(name, type, text) {
    var url = URL.createObjectURL(new Blob([text], { type: type }));
    var a = document.createElement('a');
    a.href = url; a.download = name;
    document.body.appendChild(a); a.click(); a.remove();
    setTimeout(function () { URL.revokeObjectURL(url); }, 10000);
  }
  $('export-json').addEventListener('click', function () { download('doppel-actions.json', 'application/json', JSON.stringify(actions(), null, 2) + '\n'); });
  $('export-csv').addEventListener('click', function () { download('doppel-actions.csv', 'text/csv', csv(actions())); });

  // The group view: the keeper and one member side by side, the shared region on both.
  var current = null;
  function pane(g, p, other) {
    var src = D.fileBase + p.split('/').map(encodeURIComponent).join('/');
    return '<div class="frame"><img alt="' + esc(p) + '" src="' + esc(src) + '" data-thumb="' + esc(thumb(p)) + '">' + polygon(regionOf(g, other, p)) + '</div>' +
      '<div class="cap"><b>' + esc(p) + '</b>' + (p === state[g.id].keeper ? ' (keeper)' : '') + '<br>' + esc(facts(p)) + '</div>';
  }
  function openViewer(g, m) {
    var keeper = state[g.id].keeper, l = link(g, keeper, m);
    current = { g: g, m: m };
    $('viewer-info').textContent = 'Group ' + g.id + ': ' + (l ? 'score ' + l.score.toFixed(3) + ' · ' + l.inliers + ' inliers · ' + (l.method || 'sift') : 'no direct link (linked through another member)');
    $('pane-a').innerHTML = pane(g, keeper, m);
    $('pane-b').innerHTML = pane(g, m, keeper);
    // The originals are shown when the browser may read them; otherwise the thumbnails.
    Array.prototype.forEach.call($('viewer').querySelectorAll('img'), function (img) {
      img.addEventListener('error', function () { if (img.getAttribute('data-thumb') && img.src !== img.getAttribute('data-thumb')) img.src = img.getAttribute('data-thumb'); }, { once: true });
    });
    $('viewer').hidden = false;
  }
  function step(d) {
    if (!current) return;
    var g = current.g, others = g.members.filter(function (x) { return x !== state[g.id].keeper; });
    var i = others.indexOf(current.m);
    if (others.length) openViewer(g, others[(i + d + others.length) % others.length]);
  }
  function closeViewer() { $('viewer').hidden = true; current = null; }
  $('viewer-close').addEventListener('click', closeViewer);
  $('viewer-prev').addEventListener('click', function () { step(-1); });
  $('viewer-next').addEventListener('click', function () { step(1); });
  document.addEventListener('keydown', function (ev) {
    if ($('viewer').hidden) return;
    if (ev.key === 'Escape') closeViewer();
    if (ev.key === 'ArrowRight') step(1);
    if (ev.key === 'ArrowLeft') step(-1);
  });

  var folders = {};
  D.groups.forEach(function (g) { g.members.forEach(function (m) { folders[folderOf(m)] = true; }); });
  Object.keys(folders).sort().forEach(function (f) {
    var o = document.createElement('option'); o.value = f; o.textContent = f; $('folder').appendChild(o);
  });
  refresh();
  document.body.setAttribute('data-ready', '1');
})();
`;
