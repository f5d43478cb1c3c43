// The graph explorer: draws the signed-in user's graph from POST /traverse with
// cytoscape.js, expands neighbours lazily, filters by type and depth, shows a
// node's fields and spawns walkers on it with a form built from /openapi.json.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const { api, el } = Pages;
  const body = document.body;
  const BIG = 1500; // above this many drawn nodes: cheap style, preset grid
  const TREE = 300; // up to this many drawn nodes: a tree layout, else a preset grid
  const PAGE = 1000; // nodes drawn per step; the rest wait for "Draw more"
  const entities = new Map(); // id -> the /traverse entity (kept out of cytoscape's data)
  let pendingNodes = [];
  let pendingEdges = [];
  let cy = null;
  let selected = null;
  let walkers = {};
  let components = {};

  function hue(text) {
    let h = 0;
    for (const c of text) h = (h * 31 + c.charCodeAt(0)) % 360;
    return h;
  }

  function fieldsOf(entity) {
    const out = {};
    for (const [k, v] of Object.entries(entity)) {
      if (!k.startsWith("_jac_") && k !== "source" && k !== "target") out[k] = v;
    }
    return out;
  }

  function labelOf(entity) {
    if (entity._jac_type === "Root") return "root";
    const parts = Object.entries(fieldsOf(entity)).map(([k, v]) => k + "=" + JSON.stringify(v));
    const text = entity._jac_type + (parts.length ? "(" + parts.join(", ") + ")" : "");
    return text.length > 60 ? text.slice(0, 59) + "…" : text;
  }

  function elementsOf(result) {
    for (const item of [...result.nodes, ...result.edges]) entities.set(item._jac_id, item);
    const nodes = result.nodes.map((n) => ({
      group: "nodes",
      data: { id: n._jac_id, label: labelOf(n), type: n._jac_type,
              color: n._jac_type === "Root" ? "#333" : "hsl(" + hue(n._jac_type) + ",60%,45%)" },
    }));
    const edges = result.edges.map((e) => ({
      group: "edges",
      data: { id: e._jac_id, source: e.source, target: e.target, type: e._jac_type,
              label: e._jac_type === "GenericEdge" ? "" : labelOf(e) },
    }));
    return [...nodes, ...edges];
  }

  function selectedOptions(id) {
    return [...$(id).selectedOptions].map((o) => o.value);
  }

  function query(source, depth) {
    const q = { depth, detailed: true };
    if (source) q.source = source;
    const nodeTypes = selectedOptions("node-types");
    const edgeTypes = selectedOptions("edge-types");
    if (nodeTypes.length) q.node_types = [...new Set([...nodeTypes, "Root"])];
    if (edgeTypes.length) q.edge_types = edgeTypes;
    return q;
  }

  async function traverse(source, depth) {
    const answer = await api("POST", "traverse", query(source, depth));
    return answer.data.result;
  }

  function status(text) { $("status").textContent = text; }

  function counts() {
    const more = pendingNodes.length ? " (" + pendingNodes.length + " more not drawn yet)" : "";
    status(cy.nodes().length + " nodes, " + cy.edges().length + " edges" + more);
    $("more").hidden = pendingNodes.length === 0;
  }

  // Queue elements that are not drawn yet (`first`: ahead of the queue), then draw a page.
  function queue(elements, first) {
    const nodes = [], edges = [];
    for (const item of elements) {
      const existing = cy.$id(item.data.id);
      if (existing.nonempty()) existing.data(item.data); // fields may have changed
      else (item.group === "nodes" ? nodes : edges).push(item);
    }
    const known = new Set(pendingNodes.map((n) => n.data.id));
    const fresh = nodes.filter((n) => !known.has(n.data.id));
    pendingNodes = first ? [...fresh, ...pendingNodes] : [...pendingNodes, ...fresh];
    pendingEdges.push(...edges);
    return drawMore();
  }

  function drawMore() {
    const take = pendingNodes.splice(0, PAGE);
    setBig(cy.nodes().length + take.length > BIG);
    let added = cy.collection();
    cy.batch(() => {
      added = cy.add(take);
      const ready = [], waiting = [];
      for (const e of pendingEdges) {
        if (cy.$id(e.data.id).nonempty()) continue;
        const ends = cy.$id(e.data.source).nonempty() && cy.$id(e.data.target).nonempty();
        (ends ? ready : waiting).push(e);
      }
      pendingEdges = waiting;
      added = added.union(cy.add(ready));
    });
    return added;
  }

  // Big graphs get a cheap look: straight edges, no arrows, no labels, a preset grid.
  function setBig(big) {
    if (cy.scratch("big") === big) return;
    cy.scratch("big", big);
    cy.style()
      .selector("node").style("label", big ? "" : "data(label)")
      .selector("edge").style({
        "curve-style": big ? "haystack" : "bezier",
        "target-arrow-shape": big ? "none" : "triangle",
        label: big ? "" : "data(label)",
      })
      .update();
  }

  function gridPositions(eles) {
    const nodes = eles.nodes();
    const side = Math.ceil(Math.sqrt(nodes.length));
    nodes.forEach((n, i) => { n.position({ x: (i % side) * 60, y: Math.floor(i / side) * 60 }); });
  }

  function layout(eles) {
    setBig(cy.nodes().length > BIG);
    if (cy.nodes().length > TREE) {
      cy.batch(() => gridPositions(eles || cy.elements()));
      return;
    }
    (eles || cy.elements()).layout({
      name: "breadthfirst", directed: true, spacingFactor: 1.1, animate: false,
      roots: cy.nodes('[type = "Root"]'),
    }).run();
  }

  function fit() {
    cy.fit(undefined, 40);
    if (cy.zoom() > 1.2) {
      cy.zoom(1.2);
      cy.center();
    }
  }

  async function reload() {
    const depth = Number($("depth").value || 1);
    status("loading…");
    try {
      const result = await traverse(null, depth);
      cy.elements().remove();
      entities.clear();
      pendingNodes = [];
      pendingEdges = [];
      queue(elementsOf(result), false);
      layout();
      fit();
      counts();
      if (selected && cy.$id(selected).nonempty()) show(selected);
      else clearSelection();
    } catch (err) {
      status(err.message);
    }
  }

  async function expand(id) {
    status("expanding…");
    try {
      const added = queue(elementsOf(await traverse(id, 1)), true);
      if (added.nodes().length && cy.nodes().length <= BIG) {
        layout();
        fit();
      } else if (added.nodes().length) {
        // a big graph: no global re-layout; place the newcomers in a ring around the node
        const around = cy.$id(id).position();
        const ring = 120 + 4 * added.nodes().length;
        added.nodes().forEach((n, i) => {
          const angle = (2 * Math.PI * i) / added.nodes().length;
          n.position({ x: around.x + ring * Math.cos(angle), y: around.y + ring * Math.sin(angle) });
        });
      }
      counts();
      show(id);
      return added;
    } catch (err) {
      status(err.message);
      return null;
    }
  }

  function clearSelection() {
    selected = null;
    $("node-title").textContent = "Select a node";
    $("node-fields").textContent = "";
    $("expand").disabled = true;
    $("spawn").disabled = true;
  }

  function show(id) {
    const node = cy.$id(id);
    if (node.empty()) return clearSelection();
    selected = id;
    cy.$(":selected").unselect();
    node.select();
    const entity = entities.get(id);
    $("node-title").textContent = entity._jac_type + " " + id;
    $("node-fields").textContent = JSON.stringify(fieldsOf(entity), null, 2);
    $("expand").disabled = false;
    $("spawn").disabled = !$("walker").value;
  }

  // ---- walkers -----------------------------------------------------------

  function resolve(schema) {
    if (schema && schema.$ref) return resolve(components[schema.$ref.split("/").pop()] || {});
    return schema || {};
  }

  async function loadWalkers() {
    let spec;
    try { spec = await api("GET", "openapi.json"); } catch (err) { spec = { paths: {} }; }
    components = (spec.components && spec.components.schemas) || {};
    walkers = {};
    for (const [path, item] of Object.entries(spec.paths || {})) {
      const m = /^\/walker\/([^/{}]+)\/\{node_id\}$/.exec(path);
      if (m && item.post) {
        const content = item.post.requestBody && item.post.requestBody.content;
        const schema = content && content["application/json"] ? content["application/json"].schema : {};
        walkers[m[1]] = resolve(schema);
      }
    }
    const select = $("walker");
    select.replaceChildren(el("option", { value: "", text: "— walker —" }));
    for (const name of Object.keys(walkers).sort()) select.append(el("option", { value: name, text: name }));
  }

  function buildForm() {
    const form = $("walker-form");
    form.replaceChildren();
    const schema = walkers[$("walker").value];
    $("spawn").disabled = !schema || !selected;
    if (!schema) return;
    const required = new Set(schema.required || []);
    for (const [name, raw] of Object.entries(schema.properties || {})) {
      const prop = resolve(raw);
      const type = Array.isArray(prop.type) ? prop.type.find((t) => t !== "null") : prop.type;
      let input;
      if (type === "boolean") {
        input = el("input", { type: "checkbox", checked: prop.default === true });
      } else if (type === "integer" || type === "number") {
        input = el("input", { type: "number", step: type === "integer" ? "1" : "any" });
        if (prop.default !== undefined) input.value = prop.default;
      } else if (type === "string") {
        input = el("input", { type: "text" });
        if (prop.default !== undefined) input.value = prop.default;
      } else {
        input = el("textarea", { rows: 2, placeholder: "JSON" });
        if (prop.default !== undefined) input.value = JSON.stringify(prop.default);
      }
      input.name = name;
      input.dataset.kind = type || "json";
      input.required = required.has(name) && type !== "boolean";
      form.append(el("label", {}, name + (required.has(name) ? " *" : "") + " ", input));
    }
  }

  function formValues() {
    const out = {};
    for (const input of $("walker-form").querySelectorAll("input, textarea")) {
      const kind = input.dataset.kind;
      if (kind === "boolean") { out[input.name] = input.checked; continue; }
      if (input.value === "") continue;
      if (kind === "integer" || kind === "number") out[input.name] = Number(input.value);
      else if (kind === "string") out[input.name] = input.value;
      else out[input.name] = JSON.parse(input.value);
    }
    return out;
  }

  async function spawn() {
    const name = $("walker").value;
    if (!name || !selected) return;
    const target = selected;
    let values;
    try { values = formValues(); } catch (err) { $("walker-result").textContent = "Bad JSON: " + err.message; return; }
    $("walker-result").textContent = "running…";
    try {
      const answer = await api("POST", "walker/" + encodeURIComponent(name) + "/" + target, values);
      const data = answer && answer.data !== undefined ? answer.data : answer;
      $("walker-result").textContent = JSON.stringify(data && data.reports !== undefined ? data.reports : data, null, 2);
      await expand(target);
    } catch (err) {
      $("walker-result").textContent = err.message;
    }
  }

  // ---- start -------------------------------------------------------------

  function fillTypes(id, names) {
    const select = $(id);
    for (const name of names) select.append(el("option", { value: name, text: name }));
  }

  async function start() {
    $("explorer").hidden = false;
    $("depth").max = body.dataset.maxDepth;
    if (!cy) {
      fillTypes("node-types", JSON.parse(body.dataset.nodeTypes));
      fillTypes("edge-types", JSON.parse(body.dataset.edgeTypes));
      cy = cytoscape({
        container: $("cy"),
        wheelSensitivity: 0.3,
        hideEdgesOnViewport: true,
        textureOnViewport: true,
        minZoom: 0.02,
        style: [
          { selector: "node", style: { "background-color": "data(color)", label: "data(label)",
            "font-size": 10, "text-valign": "bottom", "text-margin-y": 4, "min-zoomed-font-size": 6 } },
          { selector: "node:selected", style: { "border-width": 3, "border-color": "#f5a623" } },
          { selector: "edge", style: { width: 1.5, "curve-style": "bezier", "target-arrow-shape": "triangle",
            label: "data(label)", "font-size": 8, "line-color": "#999", "target-arrow-color": "#999",
            "min-zoomed-font-size": 8 } },
        ],
      });
      cy.on("tap", "node", (ev) => show(ev.target.id()));
      cy.on("dbltap", "node", (ev) => expand(ev.target.id()));
      $("reload").addEventListener("click", reload);
      $("more").addEventListener("click", () => {
        drawMore();
        layout();
        fit();
        counts();
      });
      $("expand").addEventListener("click", () => selected && expand(selected));
      $("walker").addEventListener("change", buildForm);
      $("spawn").addEventListener("click", spawn);
      window.jacGraph = { get cy() { return cy; }, expand, reload, show };
    }
    await loadWalkers();
    await reload();
    body.dataset.ready = "true";
  }

  Pages.signIn(start);
})();
