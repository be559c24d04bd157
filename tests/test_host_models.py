"""The host's CLIP models as they really live: weights kept apart from the computation and cast in at each
call (ComfyUI's ``comfy.ops`` and its dynamic VRAM), patchers that load elsewhere than the dream computes."""

import types

import pytest
import torch
from torch import nn

import dream_core as dc
from clip_standin import ClipVision


class Streamed(nn.Module):
    """A layer whose weights live apart from the computation, as under ComfyUI's dynamic VRAM: stored in
    bfloat16 out of reach (``weight`` reads as a tensor on the meta device, as a raw read would find the
    weight on another device), cast to the input's dtype and device at every call."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.kind = type(layer)
        self.stored = nn.ParameterDict({name: nn.Parameter(p.detach().to(torch.bfloat16), requires_grad=False)
                                        for name, p in layer.named_parameters()})
        self.options = {name: getattr(layer, name) for name in ("stride", "normalized_shape", "eps", "num_embeddings")
                        if hasattr(layer, name)}

    def __getattr__(self, name):
        if name == "weight":
            return torch.empty(self.stored["weight"].shape, device="meta")
        options = self.__dict__.get("options", {})
        if name in options:
            return options[name]
        if name in ("out_channels", "out_features"):
            return self.stored["weight"].shape[0]
        return super().__getattr__(name)

    def cast(self, name, like):
        return self.stored[name].to(like.device, torch.float32 if like.dtype == torch.long else like.dtype) \
            if name in self.stored else None

    def forward(self, x):
        weight, bias = self.cast("weight", x), self.cast("bias", x)
        if self.kind is nn.Conv2d:
            return nn.functional.conv2d(x, weight, bias, stride=self.options["stride"])
        if self.kind is nn.LayerNorm:
            return nn.functional.layer_norm(x, self.options["normalized_shape"], weight, bias, self.options["eps"])
        if self.kind is nn.Embedding:
            return nn.functional.embedding(x, weight)
        return nn.functional.linear(x, weight, bias)


def streamed(model: nn.Module) -> nn.Module:
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, (nn.Linear, nn.Conv2d, nn.LayerNorm, nn.Embedding)):
                setattr(parent, name, Streamed(child))
    return model


def test_a_tower_whose_weights_live_apart_dreams_and_embeds_as_the_plain_one():
    """The one-line bug: the position table read raw (``position_embedding.weight``) and only its dtype cast;
    here that read finds the weight elsewhere and the sum fails. Through the module's own forward it works."""
    plain = ClipVision(seed=5)
    apart = ClipVision(seed=5)
    streamed(apart.model)
    ours, theirs = (dc.backbone_from_clip_vision(c.model, image_size=32) for c in (plain, apart))
    picture = torch.rand(1, 3, 40, 48, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = (b.extractor([dc.EMBEDDING])(picture)[dc.EMBEDDING] for b in (ours, theirs))
    assert nn.functional.cosine_similarity(expected, got).item() > 0.999  # bf16 storage
    target = torch.randn(24, generator=torch.Generator().manual_seed(2))
    dream = dc.deepdream(picture, theirs, dc.cosine(dc.EMBEDDING, target), steps=3, octaves=1, jitter=0)
    assert torch.isfinite(dream).all() and (dream - picture).abs().mean() > 1e-4


class Patcher:
    """The parts of ComfyUI's ModelPatcher that placement touches: load device, clone, is_dynamic."""

    def __init__(self, model, load_device, dynamic=False):
        self.model, self.load_device, self.dynamic, self.devices = model, torch.device(load_device), dynamic, []

    def is_dynamic(self):
        return self.dynamic

    def clone(self):
        return Patcher(self.model, self.load_device, self.dynamic)

    def register_load_device(self, device):
        self.devices.append(device)


@pytest.fixture
def gpu_host(pack, fake_host, monkeypatch):
    """The fake host with a GPU as compute device and ModelPatcher present: records load_models_gpu."""
    host = pack.nodes.host
    loads = []
    monkeypatch.setattr(host.model_management, "get_torch_device", lambda: torch.device("cuda", 0), raising=False)
    monkeypatch.setattr(host.model_management, "load_models_gpu", lambda patchers, memory_required=0,
                        force_full_load=False: loads.append((patchers, memory_required, force_full_load)), raising=False)
    monkeypatch.setattr(host.model_management, "unet_offload_device", lambda: torch.device("cpu"), raising=False)
    monkeypatch.setattr(host, "ModelPatcher", Patcher)
    return types.SimpleNamespace(host=host, loads=loads)


def test_a_dynamic_patchers_weights_are_left_alone_and_the_dream_computes_on_the_gpu(gpu_host):
    """ComfyUI's dynamic VRAM refuses a full load and manages the tower's parameters: placement asks for
    no full load, replaces no parameter (no trainable copy), and says where the dream computes."""
    host = gpu_host.host
    with torch.inference_mode():
        clip = ClipVision(seed=6)
    clip.patcher = Patcher(clip.model, "cuda:0", dynamic=True)
    backbone = host.clip_vision_backbone(clip)
    before = [id(p) for p in clip.model.parameters()]
    device = host.run(host.Task(backbone, 1234, lambda **_: backbone.device), "fp32")
    assert device == torch.device("cuda", 0)
    (patchers, memory, full), = gpu_host.loads
    assert patchers == [clip.patcher] and memory == 1234 and full is False
    assert [id(p) for p in clip.model.parameters()] == before


def test_a_tower_the_host_loads_to_the_cpu_is_moved_to_the_compute_device_and_says_so(gpu_host, caplog):
    """Under --lowvram the host's CLIP vision patcher loads to the CPU (its text-encoder device): the dream
    loads a clone to the GPU, with full weights and trainable copies, and logs it once."""
    host = gpu_host.host
    with torch.inference_mode():
        clip = ClipVision(seed=7)
    clip.patcher = Patcher(clip.model, "cpu")
    backbone = host.clip_vision_backbone(clip)
    for _ in range(2):
        host.run(host.Task(backbone, 10, lambda **_: None), "fp32")
    for patchers, _, full in gpu_host.loads:
        assert patchers[0] is not clip.patcher and patchers[0].load_device == torch.device("cuda", 0) and full
    assert sum("dreaming moves it to cuda:0" in r.message for r in caplog.records) <= 1
    assert clip.patcher.load_device == torch.device("cpu")  # the host's own patcher is not changed
    assert not any(p.is_inference() for p in clip.model.parameters())
