// DeepDream Nodes: find the node that really feeds an input, across what users put between nodes: Reroute
// nodes, native link reroutes (they leave the link's origin as it is), subgraph inputs (the link then comes
// from the subgraph's input node: continue in the graph around the subgraph) and group nodes (their
// widgets carry the inner nodes' values). Pure functions over the litegraph objects, no imports, so the
// walk is tested with node (tests/test_layer_menus_js.py).

export const SUBGRAPH_INPUT_ID = -10; // the id litegraph gives a subgraph's input node
const MAX_HOPS = 64; // a cycle of reroutes must not hang the canvas

export function linkOf(graph, id) {
  if (id == null || !graph) return null;
  return graph.links instanceof Map ? graph.links.get(id) ?? null : graph.links?.[id] ?? null;
}

function nodeById(graph, id) {
  return graph?.getNodeById?.(id) ?? null;
}

const isReroute = (node) => (node?.comfyClass ?? node?.type) === "Reroute";

// The node in the graph around `subgraph` that holds it (a subgraph node), searched from `root` down.
function subgraphHolder(root, subgraph, seen = new Set()) {
  if (!root || seen.has(root)) return null;
  seen.add(root);
  for (const node of root._nodes ?? root.nodes ?? []) {
    if (node.subgraph === subgraph) return { graph: root, node };
    const inner = node.subgraph ? subgraphHolder(node.subgraph, subgraph, seen) : null;
    if (inner) return inner;
  }
  return null;
}

// The node (and its graph and output slot) whose output reaches `node`'s input named `inputName`, past
// reroutes and out of subgraphs; null when nothing is connected.
export function upstreamSource(graph, node, inputName, root = null) {
  let input = node?.inputs?.find((slot) => slot.name === inputName);
  let current = graph;
  for (let hop = 0; hop < MAX_HOPS; hop++) {
    const link = linkOf(current, input?.link);
    if (!link) return null;
    if (String(link.origin_id) === String(SUBGRAPH_INPUT_ID)) { // continue at the subgraph node's input, outside
      // (the frontend keeps this id as the string "-10" in a subgraph's links, as a number elsewhere)
      const name = current.inputs?.[link.origin_slot]?.name;
      const holder = subgraphHolder(root ?? current.rootGraph ?? graph, current);
      if (!holder) return null;
      current = holder.graph;
      input = holder.node.inputs?.find((slot) => slot.name === name) ?? holder.node.inputs?.[link.origin_slot];
      continue;
    }
    const source = nodeById(current, link.origin_id);
    if (!source) return null;
    if (isReroute(source)) {
      input = source.inputs?.[0];
      continue;
    }
    return { graph: current, node: source, slot: link.origin_slot };
  }
  return null;
}

// The value of a source node's widget `name`; a group node exposes its inner nodes' widgets under longer
// names ("Load Dream Backbone backbone"), so a name that ends with " " + `name` counts too.
export function widgetValue(node, name) {
  const widgets = node?.widgets ?? [];
  const widget = widgets.find((w) => w.name === name) ?? widgets.find((w) => w.name?.endsWith(` ${name}`));
  return widget?.value;
}
