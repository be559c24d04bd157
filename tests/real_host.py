"""Checks against ComfyUI's own classes, run by ``test_real_host.py`` in a process of its own.

Usage: ``python tests/real_host.py COMFYUI_ROOT``. It imports the host from COMFYUI_ROOT (CPU only), the
pack as the host imports it, builds the host's CLIP vision and text models from tiny configs with
random weights (loaded in place, as the host loads files), and prints one JSON object of measurements.
A separate process, because a ``comfy`` on the path makes the pack believe it runs inside the host.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
comfy_root = Path(sys.argv[1]).resolve()
sys.path.insert(0, str(comfy_root))
sys.argv = [sys.argv[0], "--cpu"]
import comfy.options  # noqa: E402

comfy.options.enable_args_parsing()
import comfy.clip_vision  # noqa: E402
import comfy.model_management  # noqa: E402
import comfy.sd  # noqa: E402
import comfy.sd1_clip  # noqa: E402
import comfy.sdxl_clip  # noqa: E402
import comfy.supported_models_base  # noqa: E402

spec = importlib.util.spec_from_file_location("deepdream_pack", ROOT / "__init__.py",
                                              submodule_search_locations=[str(ROOT)])
pack = importlib.util.module_from_spec(spec)
sys.modules["deepdream_pack"] = pack
spec.loader.exec_module(pack)
nodes, host, dc = pack.NODE_CLASS_MAPPINGS, pack.nodes.host, pack.dream_core
generator = torch.Generator().manual_seed(0)


def random_state(module: torch.nn.Module, skip: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """Random weights for every entry of ``module``'s state dict (norm scales near 1), minus ``skip``."""
    state = {}
    for key, value in module.state_dict().items():
        if any(part in key for part in skip) or not value.is_floating_point():
            continue
        noise = torch.randn(value.shape, generator=generator) * 0.05
        state[key] = (1.0 + noise if ("norm" in key or "layrnorm" in key) and key.endswith("weight") else noise).to(value.dtype)
    return state


def vision_model(image_size: int, patch: int) -> comfy.clip_vision.ClipVisionModel:
    config = {"hidden_act": "quick_gelu", "hidden_size": 32, "image_size": image_size, "intermediate_size": 64,
              "layer_norm_eps": 1e-5, "model_type": "clip_vision_model", "num_attention_heads": 4, "num_channels": 3,
              "num_hidden_layers": 2, "patch_size": patch, "projection_dim": 24}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:
        json.dump(config, file)
    with torch.inference_mode():  # Load CLIP Vision runs inside the prompt's inference mode
        model = comfy.clip_vision.ClipVisionModel(file.name)
        model.load_sd(random_state(model.model))
    return model


def text_model(kind: str, projection: bool) -> comfy.sd.CLIP:
    """SDXL's CLIP (clip_l + clip_g) or an SD1.x checkpoint's (clip_l alone), tiny, through comfy.sd.CLIP."""
    tiny = {"hidden_size": 24, "intermediate_size": 48, "num_attention_heads": 4, "num_hidden_layers": 3,
            "projection_dim": 24}
    if kind == "sdxl":
        target = comfy.supported_models_base.ClipTarget(comfy.sdxl_clip.SDXLTokenizer, comfy.sdxl_clip.SDXLClipModel)
        options = {"clip_l_model_config": tiny, "clip_g_model_config": tiny}
    else:
        target = comfy.supported_models_base.ClipTarget(comfy.sd1_clip.SD1Tokenizer, comfy.sd1_clip.SD1ClipModel)
        options = {"clip_l_model_config": tiny}
    with torch.inference_mode():
        clip = comfy.sd.CLIP(target, model_options=options)
        skip = () if projection else ("text_projection",)
        clip.load_sd(random_state(clip.cond_stage_model, skip), full_model=True)
    return clip


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.nn.functional.cosine_similarity(a.float(), b.float()).min().item()


results = {"comfyui": comfy_root.name}
with torch.inference_mode():
    picture = torch.rand(2, 50, 70, 3, generator=generator)  # not square, not the model's size
    for image_size, patch in [(42, 14), (336, 14)]:
        clip_vision = vision_model(image_size, patch)
        backbone, = nodes["DD_ClipVisionBackbone"]().build(clip_vision)
        theirs = clip_vision.encode_image(picture)["image_embeds"]
        with host.gradients():
            ours = dc.image_embedding(backbone, picture.movedim(-1, 1), dc.EMBEDDING)
        results[f"image_embedding_cosine_{image_size}"] = cosine(ours, theirs)

    clip_vision = vision_model(42, 14)
    backbone, = nodes["DD_ClipVisionBackbone"]().build(clip_vision)
    sdxl = text_model("sdxl", projection=True)
    tokens = sdxl.tokenize("a coral reef full of bright fish")
    _, host_pooled = sdxl.encode_from_tokens(tokens, return_pooled=True)  # SDXL pools through clip_g's projection
    ours = host.clip_text_embedding(sdxl, "a coral reef full of bright fish", "text")
    results["sdxl_text_cosine"] = cosine(ours, host_pooled)
    _, unprojected = sdxl.encode_from_tokens(tokens, return_pooled="unprojected")
    results["sdxl_unprojected_cosine"] = cosine(ours, unprojected)

    target, = nodes["DD_ClipTarget"]().build(backbone, 1.0, 4, clip=sdxl, text="a coral reef full of bright fish",
                                             negative_text="grey, dull, blurry", negative_weight=0.5,
                                             image=torch.rand(1, 60, 40, 3, generator=generator))
    start = torch.rand(1, 56, 64, 3, generator=generator)
    dream, = nodes["DD_DeepDream"]().dream(start, backbone, 3, 0.02, 0, 0, objective=target)
    results["dream_mean_change"] = (dream - start).abs().mean().item()
    results["dream_shape_kept"] = tuple(dream.shape) == tuple(start.shape)

    for projection in (False, True):
        sd1 = text_model("sd1", projection=projection)
        try:  # a CLIP-L file with its projection needs the user's word (file_projection)
            embedding = host.clip_text_embedding(sd1, "a coral reef", "text", file_projection=projection)
            _, plain = sd1.encode_from_tokens(sd1.tokenize("a coral reef"), return_pooled=True)
            weight = sd1.cond_stage_model.clip_l.transformer.text_projection.weight.float()
            results[f"sd1_projection_{projection}"] = {"accepted": True, "projected_cosine": cosine(embedding, plain @ weight.T),
                                                       "unprojected_cosine": cosine(embedding, plain)}
        except dc.DreamError as error:
            results[f"sd1_projection_{projection}"] = {"accepted": False, "message": str(error)}
print(json.dumps(results))
