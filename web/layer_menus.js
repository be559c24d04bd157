// DeepDream Nodes: narrow each layer menu to the layers of the backbone connected upstream, and a
// channel's range to its layer's channels. The catalogue comes from the server (/deepdream/layers,
// built from the registry and the node definitions); with no registry backbone upstream (or no
// catalogue), a menu shows everything. A saved choice is never rewritten: one the backbone does not
// have stays, marked in the widget's label, and the server explains it when the node runs.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { upstreamSource, widgetValue } from "./backbone_walk.js";

const catalogue = api
  .fetchApi("/deepdream/layers")
  .then((response) => (response.ok ? response.json() : null))
  .catch(() => null); // an older server, a proxy: the menus stay whole

const widgetOf = (node, name) => node.widgets?.find((widget) => widget.name === name);

// The catalogue entry of the backbone node feeding `node`'s backbone input, through reroutes, subgraph
// inputs and group nodes (Load Dream Backbone's menu choice, or the entry of a node such as CLIP Vision
// Backbone), or null.
function upstreamBackbone(node, data) {
  const found = upstreamSource(node.graph ?? app.graph, node, "backbone", app.graph);
  if (!found) return null;
  const name = data.backbone_nodes[found.node.comfyClass] ?? widgetValue(found.node, "backbone");
  return data.backbones[name] ? { ...data.backbones[name], name } : null;
}

function refresh(node, data) {
  const backbone = upstreamBackbone(node, data);
  for (const name of data.layer_inputs[node.comfyClass] ?? []) {
    const widget = widgetOf(node, name);
    if (!widget) continue;
    widget.ddAllValues ??= [...widget.options.values];
    const own = backbone ? [...Object.keys(backbone.layers), ...Object.keys(backbone.aliases)] : [];
    const values = backbone // choices such as "auto" first, then the backbone's layers in its own order
      ? [...widget.ddAllValues.filter((v) => !data.layer_menu.includes(v)), ...own.filter((v) => widget.ddAllValues.includes(v))]
      : widget.ddAllValues;
    const kept = values.includes(widget.value) || widget.value == null;
    widget.options.values = kept ? values : [widget.value, ...values];
    widget.ddLabel ??= widget.label ?? null;
    widget.label = kept ? widget.ddLabel ?? undefined : `${widget.name} (not in ${backbone?.name ?? "this backbone"})`;
  }
  for (const [name, layerName] of Object.entries(data.channel_inputs[node.comfyClass] ?? {})) {
    const widget = widgetOf(node, name);
    if (!widget) continue;
    widget.ddMax ??= widget.options.max;
    const layer = widgetOf(node, layerName)?.value;
    const channels = backbone?.layers[backbone.aliases[layer] ?? layer];
    widget.options.max = channels ? channels - 1 : widget.ddMax;
    if (widget.value > widget.options.max) widget.value = widget.options.max;
  }
  node.setDirtyCanvas?.(true, true);
}

function refreshAll() {
  for (const node of app.graph?._nodes ?? app.graph?.nodes ?? []) node.ddRefreshLayers?.();
}

function afterChange(widget, action) {
  const callback = widget.callback;
  widget.callback = function (...args) {
    const result = callback?.apply(this, args);
    action();
    return result;
  };
}

app.registerExtension({
  name: "DeepDreamNodes.LayerMenus",
  async nodeCreated(node) {
    const data = await catalogue;
    if (!data) return;
    if (node.comfyClass === "DD_LoadBackbone") {
      const choice = widgetOf(node, "backbone");
      if (choice) afterChange(choice, refreshAll);
      return;
    }
    const channels = data.channel_inputs[node.comfyClass] ?? {};
    if (!data.layer_inputs[node.comfyClass] && !Object.keys(channels).length) return;
    node.ddRefreshLayers = () => refresh(node, data);
    const connectionsChanged = node.onConnectionsChange;
    node.onConnectionsChange = function (...args) {
      const result = connectionsChanged?.apply(this, args);
      setTimeout(() => node.ddRefreshLayers(), 0); // the link is in the graph once this event is over
      return result;
    };
    for (const layerName of Object.values(channels)) {
      const layer = widgetOf(node, layerName);
      if (layer) afterChange(layer, node.ddRefreshLayers);
    }
    setTimeout(() => node.ddRefreshLayers(), 0); // a loaded workflow's links exist once it is configured
  },
});
