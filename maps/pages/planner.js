/* The grid planner page (maps/pages/planner.py): Leaflet.draw tools -> the plans API.
   Every figure shown comes from the API's answers; nothing is computed here. */
function patrolgridPlanner(map, cfg) {
  "use strict";
  const L_ = cfg.labels;
  const state = {plan: cfg.plan, selected: [], tool: null, drawer: null, pending: null,
                 busy: false};
  const $ = (id) => document.getElementById(id);
  // The token the page was opened with (?access_token=), else the sign-in cookie of
  // /maps/login, which the API takes from this page's script (the X-Patrolgrid-Page header);
  // only when the API refuses both is the token asked for.
  let token = (() => {
    const fromUrl = new URLSearchParams(window.location.search).get("access_token");
    if (fromUrl) { sessionStorage.setItem("patrolgrid_token", fromUrl); return fromUrl; }
    return sessionStorage.getItem("patrolgrid_token") || "";
  })();
  const esc = (v) => String(v === null || v === undefined ? "—" : v)
    .replace(/[&<>"']/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;",
                                   "'": "&#39;"}[c]));
  // An ISO time as "YYYY-MM-DD HH:MM" in the city's time zone (PATROLGRID_TIMEZONE).
  const localTime = (iso) => {
    const parts = new Intl.DateTimeFormat("en-CA", {
      timeZone: cfg.timezone, year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", hourCycle: "h23"}).formatToParts(new Date(iso));
    const p = Object.fromEntries(parts.map((x) => [x.type, x.value]));
    return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}`;
  };
  const stateName = (s) => L_.states[s] || s;  // the page's words for grid and plan states
  const status = (text, error) => {
    const el = $("pg-status");
    el.textContent = text;
    el.style.color = error ? "#b00" : "#084594";
  };

  async function api(method, path, body, retried) {
    const headers = {"Content-Type": "application/json", "X-Patrolgrid-Page": "1"};
    if (token) headers.Authorization = "Bearer " + token;
    const response = await fetch(cfg.api + path, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body)});
    if (response.status === 401 && !retried) {
      const given = window.prompt(L_.token);
      if (given) {
        token = given.trim();
        sessionStorage.setItem("patrolgrid_token", token);
        return api(method, path, body, true);
      }
    }
    const data = await response.json();
    if (!response.ok) {
      const d = data.detail || {};
      throw new Error(`${response.status}: ${d.message || JSON.stringify(d)}` +
                      (d.field ? ` (${d.field}: ${d.valid || ""})` : ""));
    }
    return data;
  }

  L.geoJSON(cfg.outline, {style: {color: "#252525", weight: 3, fill: false},
                          interactive: false}).addTo(map);
  const styleOf = (f) => {
    const s = f.properties.status;
    const selected = state.selected.includes(f.properties.code);
    return {color: selected ? "#08306b" : "#3182bd", weight: selected ? 4 : 1.5,
            fillColor: s === "created" ? "#6baed6" : s === "changed" ? "#fd8d3c" : "#c6dbef",
            fillOpacity: 0.35};
  };
  const grids = L.geoJSON(null, {
    style: styleOf,
    onEachFeature: (f, layer) => {
      // names are the planners' own text: escaped, as a tooltip's string is HTML
      layer.bindTooltip(`${esc(f.properties.code)} v${esc(f.properties.version || "new")} ` +
                        `${f.properties.name ? esc(f.properties.name) : ""}`);
      layer.on("click", () => toggle(f.properties.code));
    }}).addTo(map);
  const problems = L.geoJSON(null, {
    style: {color: "#cb181d", weight: 2, fillColor: "#cb181d", fillOpacity: 0.5,
            dashArray: "4 3", className: "pg-problem"},
    onEachFeature: (f, layer) => layer.bindTooltip(esc(f.properties.message))}).addTo(map);
  const show = (collection) => {
    grids.clearLayers();
    grids.addData(collection);
  };
  show(cfg.grids);

  function toggle(code) {
    if (state.busy) { return; }
    const i = state.selected.indexOf(code);
    if (i >= 0) { state.selected.splice(i, 1); } else { state.selected.push(code); }
    grids.setStyle(styleOf);
    status(state.selected.join(", "));
  }

  async function ensurePlan() {  // only ever called by send(), one at a time (state.busy)
    if (state.plan) { return state.plan; }
    const plan = await api("POST", "/plans", {name: `planner ${cfg.parent} ` +
                                              new Date().toISOString().slice(0, 16),
                                              parent: cfg.parent});
    state.plan = plan.id;
    return plan.id;
  }

  function drawProblems(validation) {
    problems.clearLayers();
    const list = $("pg-problems");
    list.innerHTML = "";
    for (const p of validation.problems) {
      if (p.geometry) {
        problems.addData({type: "Feature", geometry: p.geometry,
                          properties: {message: p.message}});
      }
      const li = document.createElement("li");
      li.className = "pg-problem-item";
      const kind = L_.kinds[p.kind] ? `${L_.kinds[p.kind]} (${p.kind})` : p.kind;
      li.textContent = `${p.blocking ? "✗" : "·"} ${kind}: ${p.message}`;
      list.appendChild(li);
    }
    $("pg-apply").disabled = !validation.ok;
  }

  function drawImpact(impact) {
    const b = impact.balance;
    const rows = impact.grids.map((g) => {
      const be = g.before || {}, af = g.after || {};
      const km2 = (v) => v === undefined ? "—" : (v / 1e6).toFixed(3);
      return `<tr class="pg-impact-row"><td>${esc(g.code)}</td><td>${esc(stateName(g.status))}</td>` +
        `<td class="num">${esc(be.incidents)}→${esc(af.incidents)}</td>` +
        `<td class="num">${km2(be.area_m2)}→${km2(af.area_m2)}</td>` +
        `<td class="num">${esc(be.households)}→${esc(af.households)}</td></tr>`;
    }).join("");
    $("pg-impact").innerHTML =
      `<div id="pg-cv">${esc(L_.cv)}: ${esc(b.cv_before)} → ${esc(b.cv_after)}` +
      ` · ${esc(impact.moves.open_incidents)} ${esc(L_.open_moved)}</div>` +
      `<table><tr><th>${esc(L_.grid)}</th><th></th><th>${esc(L_.incidents)}</th>` +
      `<th>${esc(L_.area)}</th><th>${esc(L_.households)}</th></tr>${rows}</table>`;
  }

  async function send(op, fields) {
    state.busy = true;
    try {
      const id = await ensurePlan();
      status("…");
      const plan = await api("POST", `/plans/${id}/edits`, Object.assign({op}, fields));
      show(plan.result);
      drawProblems(plan.validation);
      drawImpact(await api("GET", `/plans/${id}/impact`));
      state.selected = [];
      grids.setStyle(styleOf);
      status(`${L_.plan} ${id}: ${plan.edits.length} · ${L_[op]}`);
    } catch (err) {
      status(err.message, true);
    } finally {
      state.busy = false;
    }
  }

  function one(op) {
    if (state.selected.length !== 1) {
      status(`${L_[op]}: ${L_.one_grid}`, true);
      return null;
    }
    return state.selected[0];
  }

  // One handler for every drawn shape: it goes to the tool active when the shape was
  // finished, once. A tool switched away from, or cancelled (Esc), sends nothing.
  map.on(L.Draw.Event.CREATED, (e) => {
    const done = state.pending;
    state.pending = null;
    state.drawer = null;
    if (done && !state.busy) { done(e.layer.toGeoJSON().geometry); }
  });
  map.on(L.Draw.Event.DRAWSTOP, () => { state.pending = null; state.drawer = null; });

  function draw(kind, done) {
    if (state.drawer) { state.drawer.disable(); }  // its DRAWSTOP forgets its shape's use
    state.drawer = kind === "line" ? new L.Draw.Polyline(map, {})
      : new L.Draw.Polygon(map, {allowIntersection: true, showArea: false});
    state.pending = done;
    state.drawer.enable();
  }

  const newCode = (fallback) => ($("pg-new-code").value || "").trim() || fallback;
  const tools = {
    replace: () => {
      const code = one("replace");
      if (code) { draw("polygon", (geometry) => send("replace", {code, geometry})); }
    },
    split: () => {
      const code = one("split");
      if (code) {
        draw("line", (line) => send("split", {code, line, new_code: newCode(code + "-B")}));
      }
    },
    merge: () => {
      if (state.selected.length < 2) { status(`${L_.merge}: ${L_.two_grids}`, true); return; }
      send("merge", {codes: state.selected.slice(), into: state.selected[0]});
    },
    create: () => draw("polygon", (geometry) => {
      const code = newCode(cfg.parent + "-N");
      send("create", {code, name: code, geometry});
    }),
    retire: () => {
      const code = one("retire");
      if (code) { send("retire", {code}); }
    },
  };
  for (const op of Object.keys(tools)) {
    $("pg-tool-" + op).addEventListener("click", () => { if (!state.busy) { tools[op](); } });
  }

  $("pg-apply").addEventListener("click", async () => {
    state.busy = true;
    try {
      const result = await api("POST", `/plans/${state.plan}/apply`);
      const now = await api("GET", `/grids?parent=${encodeURIComponent(cfg.parent)}&limit=1000`);
      show(now);
      problems.clearLayers();
      $("pg-apply").disabled = true;
      const versions = Object.entries(result.versions).map(([c, v]) => `${c} v${v}`).join(", ");
      status(`${L_.applied}: ${versions}` + (result.roster.length ? ` · ${L_.roster}` : ""));
      $("pg-status").dataset.applied = "1";
      state.plan = null;  // the next edit starts a new plan on the grids now in force
      state.selected = [];
    } catch (err) {
      status(err.message, true);
    } finally {
      state.busy = false;
    }
  });

  if (state.plan) {
    const opened = state.plan;
    api("GET", `/plans/${opened}`).then((plan) => {
      show(plan.result);
      drawProblems(plan.validation || {ok: false, problems: []});
      if (plan.status !== "draft") {  // shown as it was applied; edits start a new plan
        state.plan = null;
        $("pg-apply").disabled = true;
        status(`${L_.plan} ${opened}: ${stateName(plan.status)} ` +
               (plan.applied ? localTime(plan.applied.applied_at) : ""));
        return null;
      }
      return api("GET", `/plans/${opened}/impact`).then(drawImpact);
    }).catch((err) => status(err.message, true));
  }
  return {state, tools, grids, problems, map, api};
}
