// The upstream walk of web/backbone_walk.js on hand-built litegraph-shaped graphs (node's own test runner).
import { test } from "node:test";
import assert from "node:assert/strict";
import { SUBGRAPH_INPUT_ID, upstreamSource, widgetValue } from "../../web/backbone_walk.js";

function graph(nodes, links, extra = {}) {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  return { _nodes: nodes, links, getNodeById: (id) => byId.get(id) ?? null, ...extra };
}
const link = (id, origin_id, origin_slot = 0) => ({ id, origin_id, origin_slot });
const loader = (id, choice) => ({ id, comfyClass: "DD_LoadBackbone", widgets: [{ name: "backbone", value: choice }] });
const select = (id, linkId) => ({ id, comfyClass: "DD_SelectLayer", inputs: [{ name: "backbone", link: linkId }] });
const reroute = (id, linkId) => ({ id, comfyClass: "Reroute", inputs: [{ name: "", link: linkId }] });

test("a direct link finds its source, links kept as an object or a Map", () => {
  for (const links of [{ 1: link(1, 10) }, new Map([[1, link(1, 10)]])]) {
    const g = graph([loader(10, "vgg19"), select(20, 1)], links);
    assert.equal(upstreamSource(g, g.getNodeById(20), "backbone").node.id, 10);
  }
});

test("Reroute nodes are walked through, a loop of them ends the walk", () => {
  const g = graph([loader(10, "vgg19"), reroute(11, 1), reroute(12, 2), select(20, 3)],
    { 1: link(1, 10), 2: link(2, 11), 3: link(3, 12) });
  assert.equal(widgetValue(upstreamSource(g, g.getNodeById(20), "backbone").node, "backbone"), "vgg19");
  const loop = graph([reroute(11, 2), reroute(12, 1), select(20, 3)], { 1: link(1, 11), 2: link(2, 12), 3: link(3, 12) });
  assert.equal(upstreamSource(loop, loop.getNodeById(20), "backbone"), null);
});

test("a subgraph input is followed to the subgraph node's input outside", () => {
  const inner = graph([select(20, 7)], { 7: link(7, String(SUBGRAPH_INPUT_ID), 1) }, // "-10", as 1.58 keeps it
    { inputs: [{ name: "image" }, { name: "backbone" }] });
  const holder = { id: 30, subgraph: inner, inputs: [{ name: "image", link: null }, { name: "backbone", link: 4 }] };
  const root = graph([loader(10, "resnet50"), reroute(11, 1), holder], { 1: link(1, 10), 4: link(4, 11) });
  inner.rootGraph = root;
  const found = upstreamSource(inner, inner.getNodeById(20), "backbone");
  assert.equal(found.node.id, 10);
  assert.equal(found.graph, root);
});

test("nothing connected is null; a group node's inner widget is found by its longer name", () => {
  const g = graph([select(20, null)], {});
  assert.equal(upstreamSource(g, g.getNodeById(20), "backbone"), null);
  const group = { widgets: [{ name: "Load Dream Backbone backbone", value: "alexnet" }] };
  assert.equal(widgetValue(group, "backbone"), "alexnet");
});
