// ipad-qc report and comparison pages. Plain JavaScript, no network, no innerHTML: every value from
// the data block (file names are untrusted) reaches the page through textContent or a DOM property.
'use strict';
(function () {
  const DATA = JSON.parse(document.getElementById('ipad-data').textContent);
  const ARTIFACTS = DATA.artifact_classes;
  const rows = DATA.rows.map((values) => Object.fromEntries(DATA.columns.map((name, i) => [name, values[i]])));

  // --- small helpers ---------------------------------------------------------------------------
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (key === 'text') node.textContent = value;
      else if (key === 'class') node.className = value;
      else if (key.startsWith('data-') || key.startsWith('aria-')) node.setAttribute(key, value);
      else node[key] = value;
    }
    for (const child of children) if (child !== null && child !== undefined) node.append(child);
    return node;
  }
  const num = (value, digits = 3) => (value === null || value === undefined ? '–' : value.toFixed(digits));
  const percent = (value) => (value === null || value === undefined ? '–' : (100 * value).toFixed(1) + ' %');
  const chip = (text, kind) => el('span', { class: 'chip ' + kind, text: text });
  const signed = (value) => (value === null ? '–' : (value > 0 ? '+' : '') + value.toFixed(3));

  // A thumbnail (or a grey box when the original is unavailable) with the mask overlay on top.
  function figure(src, overlay, row, note, cls) {
    const box = el('div', { class: 'fig ' + (cls || '') });
    if (src) box.append(el('img', { src: src, alt: '', loading: 'lazy', decoding: 'async', class: 'base' }));
    else {
      const empty = el('div', { class: 'noimg', text: note || 'no image' });
      if (row.width && row.height) empty.style.aspectRatio = row.width + ' / ' + row.height;
      box.append(empty);
    }
    if (overlay) box.append(el('img', { src: overlay, alt: '', loading: 'lazy', class: 'overlay' }));
    return box;
  }

  // --- the list: filter, search, sort, paginate ------------------------------------------------
  const state = { filters: {}, search: '', sort: null, dir: 1, page: 0, pageSize: DATA.page_size, shown: [] };
  let spec = null;

  function compareBy(key, dir) {
    return (a, b) => {
      const x = key(a), y = key(b);
      if (x === y) return 0;
      if (x === null || x === undefined) return 1; // missing values last, whatever the direction
      if (y === null || y === undefined) return -1;
      return (x < y ? -1 : 1) * dir;
    };
  }

  function refresh() {
    const query = state.search.trim().toLowerCase();
    let list = rows.filter((row) => spec.filters.every((f) => f.test(row, state.filters[f.id])));
    if (query) list = list.filter((row) => row._search.includes(query));
    const column = spec.columns.find((c) => c.id === state.sort);
    if (column) list.sort(compareBy(column.key, state.dir));
    state.shown = list;
    state.page = Math.min(state.page, Math.max(0, Math.ceil(list.length / state.pageSize) - 1));
    renderHead();
    renderBody();
  }

  function renderHead() {
    const cells = spec.columns.map((column) => {
      const th = el('th', { scope: 'col', text: column.title, 'data-col': column.id });
      if (column.key) {
        th.classList.add('sortable');
        th.setAttribute('aria-sort', state.sort !== column.id ? 'none' : state.dir > 0 ? 'ascending' : 'descending');
        th.title = 'sort by ' + column.title;
        th.addEventListener('click', () => {
          state.dir = state.sort === column.id ? -state.dir : column.firstDir || 1;
          state.sort = column.id;
          refresh();
        });
      }
      return th;
    });
    document.querySelector('#rows thead').replaceChildren(el('tr', null, ...cells));
  }

  function renderBody() {
    const start = state.page * state.pageSize;
    const slice = state.shown.slice(start, start + state.pageSize);
    const trs = slice.map((row, i) => {
      const tr = el('tr', { 'data-index': String(start + i) });
      tr.dataset.key = spec.key(row);
      for (const column of spec.columns) tr.append(el('td', { class: 'c-' + column.id }, column.render(row)));
      tr.addEventListener('click', (event) => {
        if (event.target.closest('.fig')) openViewer(start + i);
      });
      return tr;
    });
    document.querySelector('#rows tbody').replaceChildren(...trs);
    const total = rows.length;
    document.getElementById('count').textContent =
      state.shown.length === total ? total + ' ' + spec.noun : state.shown.length + ' of ' + total + ' ' + spec.noun;
    renderPager();
  }

  function renderPager() {
    const pages = Math.max(1, Math.ceil(state.shown.length / state.pageSize));
    const go = (page) => { state.page = page; renderBody(); window.scrollTo(0, 0); };
    const prev = el('button', { type: 'button', id: 'page-prev', text: '← previous', disabled: state.page === 0 });
    const next = el('button', { type: 'button', id: 'page-next', text: 'next →', disabled: state.page >= pages - 1 });
    prev.addEventListener('click', () => go(state.page - 1));
    next.addEventListener('click', () => go(state.page + 1));
    const size = el('select', { id: 'page-size', title: 'rows per page' },
      ...[25, 50, 100, 250].map((n) => el('option', { value: String(n), text: n + ' per page', selected: n === state.pageSize })));
    size.addEventListener('change', () => { state.pageSize = Number(size.value); state.page = 0; renderBody(); });
    const info = el('span', { id: 'page-info', text: 'page ' + (state.page + 1) + ' of ' + pages });
    document.getElementById('pager').replaceChildren(prev, info, next, size);
  }

  function renderControls() {
    const controls = spec.filters.map((f) => {
      const select = el('select', { id: 'filter-' + f.id },
        ...f.options.map(([value, text]) => el('option', { value: value, text: text })));
      select.value = state.filters[f.id];
      select.addEventListener('change', () => { state.filters[f.id] = select.value; state.page = 0; refresh(); });
      return el('label', null, f.label + ' ', select);
    });
    const search = el('input', { type: 'search', id: 'search', placeholder: 'search path  ( / )', value: state.search });
    search.addEventListener('input', () => { state.search = search.value; state.page = 0; refresh(); });
    const masks = el('input', { type: 'checkbox', id: 'masks', checked: true });
    masks.addEventListener('change', () => document.getElementById('rows').classList.toggle('hide-masks', !masks.checked));
    document.getElementById('controls').replaceChildren(...controls, search, el('label', null, masks, ' masks'));
    document.addEventListener('keydown', (event) => {
      if (event.key === '/' && document.activeElement !== search && !viewer.open) { event.preventDefault(); search.focus(); }
    });
  }

  function setFilter(id, value) {
    state.filters[id] = value;
    state.page = 0;
    document.getElementById('filter-' + id).value = value;
    refresh();
  }

  // --- large view --------------------------------------------------------------------------------
  const viewer = document.getElementById('viewer');
  const viewerMasks = document.getElementById('viewer-masks');
  let viewing = 0;

  function openViewer(index) {
    viewing = Math.max(0, Math.min(index, state.shown.length - 1));
    const row = state.shown[viewing];
    document.getElementById('viewer-title').textContent = spec.key(row);
    document.getElementById('viewer-body').replaceChildren(spec.viewer(row));
    if (!viewer.open) viewer.showModal();
  }
  function toggleViewerMasks() { viewer.classList.toggle('hide-masks', !viewerMasks.checked); }
  viewerMasks.addEventListener('change', toggleViewerMasks);
  document.getElementById('viewer-prev').addEventListener('click', () => openViewer(viewing - 1));
  document.getElementById('viewer-next').addEventListener('click', () => openViewer(viewing + 1));
  document.getElementById('viewer-close').addEventListener('click', () => viewer.close());
  viewer.addEventListener('click', (event) => { if (event.target === viewer) viewer.close(); });
  viewer.addEventListener('keydown', (event) => {
    if (event.key === 'ArrowLeft') openViewer(viewing - 1);
    else if (event.key === 'ArrowRight') openViewer(viewing + 1);
    else if (event.key === 'm') { viewerMasks.checked = !viewerMasks.checked; toggleViewerMasks(); }
  });

  function facts(pairs) {
    return el('dl', { class: 'facts' }, ...pairs.filter(([, v]) => v !== null && v !== undefined && v !== '')
      .flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: String(v) })]));
  }

  function header() {
    const top = document.getElementById('top');
    document.title = DATA.title;
    top.append(el('h1', { text: DATA.title }), facts(DATA.facts));
  }

  // --- the scan report ---------------------------------------------------------------------------
  function reportSpec() {
    const classIndex = (name) => DATA.classes.indexOf(name);
    const score = (name) => (row) => (row.scores ? row.scores[classIndex(name)] : null);
    const scoreColumns = DATA.classes.map((name) => ({
      id: 'score_' + name, title: name, key: score(name), firstDir: name === 'clean' ? 1 : -1,
      render: (row) => scoreCell(score(name)(row), name),
    }));
    const labelOptions = [['', 'all'], ['flagged', 'flagged (not clean)'], ...DATA.classes.map((c) => [c, c])];
    return {
      noun: 'images',
      key: (row) => row.path,
      filters: [
        { id: 'label', label: 'class', options: labelOptions,
          test: (row, v) => !v || (v === 'flagged' ? row.status === 'ok' && row.label !== 'clean' : row.label === v) },
        { id: 'status', label: 'status', options: [['', 'all'], ['ok', 'ok'], ['error', 'decode error'], ['warning', 'with warning']],
          test: (row, v) => !v || (v === 'warning' ? Boolean(row.warning) : row.status === v) },
      ],
      columns: [
        { id: 'image', title: 'image', render: (row) => figure(row.thumb, row.overlay, row, row.status === 'error' ? 'decode error' : row.note) },
        { id: 'path', title: 'path', key: (row) => row.path, render: pathCell },
        { id: 'label', title: 'label', key: (row) => row.label, render: (row) => (row.label ? chip(row.label, row.label) : chip('error', 'error')) },
        ...scoreColumns,
        { id: 'mask', title: 'mask area', key: (row) => row.mask_fraction, firstDir: -1, render: (row) => percent(row.mask_fraction) },
        { id: 'size', title: 'size', key: (row) => (row.width ? row.width * row.height : null), firstDir: -1,
          render: (row) => (row.width ? row.width + '×' + row.height : '–') },
      ],
      viewer: (row) => el('div', { class: 'single' },
        figure(row.view || row.thumb, row.view_overlay || row.overlay, row, row.note || 'no image', 'large'),
        facts([['label', row.label], ['error', row.error], ['warning', row.warning],
          ...DATA.classes.map((c) => [c, num(score(c)(row))]), ['mask area', percent(row.mask_fraction)],
          ['size', row.width ? row.width + '×' + row.height : null], ['format', row.format],
          ['decoded as', row.decode_mode], ['note', row.note]])),
      summary: reportSummary,
      defaults: { sort: 'score_clean', dir: 1 },
    };
  }

  function scoreCell(value, name) {
    if (value === null || value === undefined) return '–';
    const bar = el('span', { class: 'bar ' + name });
    bar.style.width = Math.round(100 * value) + '%';
    return el('span', { class: 'score' }, el('span', { class: 'track' }, bar), num(value));
  }

  function pathCell(row) {
    const cell = el('div', null, el('span', { class: 'path', text: row.path }));
    if (row.error) cell.append(el('div', { class: 'error-text', text: row.error }));
    if (row.warning) cell.append(el('div', { class: 'warn-text', text: row.warning }));
    return cell;
  }

  function reportSummary(root) {
    const counts = { total: rows.length, error: 0 };
    for (const name of DATA.classes) counts[name] = 0;
    for (const row of rows) counts[row.status === 'ok' ? row.label : 'error'] += 1;
    const card = (name, text, filter) => {
      const button = el('button', { type: 'button', class: 'card ' + name, 'data-card': name },
        el('strong', { text: String(counts[name]) }), el('span', { text: text }));
      button.addEventListener('click', () => { setFilter('label', filter === 'error' ? '' : filter); setFilter('status', filter === 'error' ? 'error' : ''); });
      return button;
    };
    root.append(el('div', { class: 'cards' }, card('total', 'images', ''),
      ...DATA.classes.map((c) => card(c, c, c)), card('error', 'decode errors', 'error')));
    root.append(el('div', { class: 'histograms' }, ...ARTIFACTS.map(histogram)));
  }

  // Score histogram of one class over the decodable images; bar heights on a log scale so that a few
  // high scores stay visible next to thousands of low ones.
  function histogram(name) {
    const bins = new Array(20).fill(0);
    const index = DATA.classes.indexOf(name);
    for (const row of rows) if (row.scores) bins[Math.min(19, Math.floor(row.scores[index] * 20))] += 1;
    const top = Math.log1p(Math.max(1, ...bins));
    const svgNS = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(svgNS, 'svg');
    svg.setAttribute('viewBox', '0 0 200 60');
    svg.setAttribute('class', 'hist ' + name);
    bins.forEach((count, i) => {
      const height = count ? Math.max(2, 56 * Math.log1p(count) / top) : 0;
      const bar = document.createElementNS(svgNS, 'rect');
      for (const [k, v] of [['x', i * 10 + 1], ['y', 58 - height], ['width', 8], ['height', height]]) bar.setAttribute(k, v);
      const title = document.createElementNS(svgNS, 'title');
      title.textContent = (i / 20).toFixed(2) + '–' + ((i + 1) / 20).toFixed(2) + ': ' + count + ' images';
      bar.append(title);
      svg.append(bar);
    });
    return el('figure', { class: 'histogram' }, svg, el('figcaption', { text: name + ' score (0 → 1, log count)' }));
  }

  // --- the comparison ----------------------------------------------------------------------------
  const VERDICTS = [['regression', 'regressions'], ['new_error', 'new decode errors'], ['only_a', 'only in A'],
    ['only_b', 'only in B'], ['improvement', 'improvements'], ['fixed_error', 'fixed decode errors']];

  const VERDICT_TEXT = { regression: 'regression', new_error: 'new decode error', only_a: 'only in A',
    only_b: 'only in B', improvement: 'improvement', fixed_error: 'decode fixed' };

  function compareSpec() {
    const delta = (name) => (row) => row.deltas[ARTIFACTS.indexOf(name)];
    return {
      noun: 'changed images',
      key: (row) => row.key,
      filters: [
        { id: 'verdict', label: 'show', options: [['', 'all changes'], ...VERDICTS], test: (row, v) => !v || row.verdict === v },
        { id: 'class', label: 'class', options: [['', 'any'], ...ARTIFACTS.map((c) => [c, c])],
          test: (row, v) => !v || Boolean(row.changes[ARTIFACTS.indexOf(v)]) },
      ],
      columns: [
        { id: 'a', title: DATA.side_names[0], render: (row) => side(row, 'a') },
        { id: 'b', title: DATA.side_names[1], render: (row) => side(row, 'b') },
        { id: 'key', title: 'image', key: (row) => row.key, render: keyCell },
        { id: 'verdict', title: 'verdict', key: (row) => row.rank, render: (row) => chip(VERDICT_TEXT[row.verdict] || row.verdict, row.verdict) },
        ...ARTIFACTS.map((name) => ({
          id: 'delta_' + name, title: 'Δ ' + name, key: delta(name), firstDir: -1,
          render: (row) => deltaCell(row, name),
        })),
      ],
      viewer: (row) => el('div', { class: 'pair' },
        el('div', null, el('h3', { text: DATA.side_names[0] + ': ' + (row.label_a || row.error_a || 'missing') }),
          figure(row.view_a || row.thumb_a, row.view_overlay_a || row.overlay_a, row, row.note_a || 'missing', 'large')),
        el('div', null, el('h3', { text: DATA.side_names[1] + ': ' + (row.label_b || row.error_b || 'missing') }),
          figure(row.view_b || row.thumb_b, row.view_overlay_b || row.overlay_b, row, row.note_b || 'missing', 'large'))),
      summary: compareSummary,
      defaults: { sort: 'verdict', dir: 1 },
    };
  }

  function side(row, which) {
    const present = row['path_' + which] !== null;
    const note = !present ? 'missing' : row['status_' + which] === 'error' ? 'decode error' : row['note_' + which];
    return figure(row['thumb_' + which], row['overlay_' + which], row, note);
  }

  function keyCell(row) {
    const cell = el('div', null, el('span', { class: 'path', text: row.key }));
    for (const which of ['a', 'b']) {
      const path = row['path_' + which];
      if (path !== null && path !== row.key) cell.append(el('div', { class: 'sub', text: which.toUpperCase() + ': ' + path }));
      if (row['error_' + which]) cell.append(el('div', { class: 'error-text', text: which.toUpperCase() + ': ' + row['error_' + which] }));
    }
    const labels = (row.label_a || '–') + ' → ' + (row.label_b || '–');
    cell.append(el('div', { class: 'sub', text: labels }));
    return cell;
  }

  function deltaCell(row, name) {
    const i = ARTIFACTS.indexOf(name);
    const change = row.changes[i];
    const cell = el('div', { class: 'delta' }, el('span', { text: signed(row.deltas[i]) }));
    if (change) cell.append(chip(change.replaceAll('_', ' '), change));
    return cell;
  }

  function compareSummary(root) {
    const s = DATA.summary;
    const verdict = s.regressions ? s.regressions + ' image(s) got worse' : 'no regressions';
    root.append(el('p', { class: 'verdict ' + (s.regressions ? 'bad' : 'good'), id: 'verdict', text: verdict }));
    const head = el('tr', null, el('th', { text: 'class' }),
      ...['newly flagged', 'no longer flagged', 'score up', 'score down'].map((t) => el('th', { text: t })));
    const body = ARTIFACTS.map((name) => el('tr', null, el('th', { scope: 'row' }, chip(name, name)),
      ...['newly_flagged', 'no_longer_flagged', 'score_up', 'score_down'].map((k) => el('td', { text: String(s.classes[name][k]) }))));
    const totals = el('p', { class: 'totals', text: 'matched ' + s.matched + ' · unchanged ' + s.unchanged +
      ' · only in A ' + s.only_a + ' · only in B ' + s.only_b + ' · new decode errors ' + s.new_error +
      ' · fixed decode errors ' + s.fixed_error + ' · tolerance ±' + DATA.tolerance });
    root.append(el('table', { class: 'summary' }, el('thead', null, head), el('tbody', null, ...body)), totals);
  }

  // --- start -------------------------------------------------------------------------------------
  spec = DATA.kind === 'compare' ? compareSpec() : reportSpec();
  for (const row of rows) row._search = spec.key(row).toLowerCase() + '\n' + (row.path_a || '') + '\n' + (row.path_b || '');
  for (const f of spec.filters) state.filters[f.id] = '';
  state.sort = spec.defaults.sort;
  state.dir = spec.defaults.dir;
  header();
  spec.summary(document.getElementById('summary'));
  renderControls();
  refresh();
  document.body.dataset.ready = 'true';
})();
