// DeepDream Nodes: narrow each layer menu to the layers of the backbone connected upstream, and a
// channel's range to its layer's channels. The catalogue comes from the server (/deepdream/layers,
// built from the registry and the node definitions); with no registry backbone upstream, a menu
// shows everything. The server still checks every pick when the node runs.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const catalogue = api.fetchApi("/deepdream/layers").then((response) => response.json());

const widgetOf = (node, name) => node.widgets?.find((widget) => widget.name === name);

function linkOf(graph, id) {
  return graph.links instanceof Map ? graph.links.get(id) : graph.links?.[id];
}

// The catalogue entry of the backbone node feeding `node`'s backbone input (Load Dream Backbone's
// menu choice, or the entry of a node such as CLIP Vision Backbone), or null.
function upstreamBackbone(node, data) {
  const graph = node.graph ?? app.graph;
  const input = node.inputs?.find((slot) => slot.name === "backbone");
  const link = input?.link != null ? linkOf(graph, input.link) : null;
  const source = link ? graph.getNodeById(link.origin_id) : null;
  const name = data.backbone_nodes[source?.comfyClass] ?? widgetOf(source ?? {}, "backbone")?.value;
  return data.backbones[name] ?? null;
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
    widget.options.values = values;
    if (!values.includes(widget.value)) {
      widget.value = values.includes(backbone.default_layer) ? backbone.default_layer : values[0];
    }
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
