"""Against ComfyUI's own classes (``comfy.clip_vision.ClipVisionModel``, ``comfy.sd.CLIP`` with SDXL's and
SD1.x's text models), built from tiny configs: run where a ComfyUI checkout is named by ``COMFYUI_ROOT``
(``python main.py`` runs from it), skipped elsewhere (CI has no host). The plain-torch stand-ins of
``clip_standin.py`` cover the same behaviour in every run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

COMFYUI_ROOT = os.environ.get("COMFYUI_ROOT")


@pytest.fixture(scope="module")
def measured():
    if not COMFYUI_ROOT or not (Path(COMFYUI_ROOT) / "comfy" / "clip_vision.py").is_file():
        pytest.skip("no ComfyUI checkout: set COMFYUI_ROOT to run against the host's own classes")
    done = subprocess.run([sys.executable, str(Path(__file__).with_name("real_host.py")), COMFYUI_ROOT],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_our_image_embedding_is_the_hosts_encode_image(measured):
    """Non-square pictures, a 14 px patch, native 42 and 336 px: resize, crop and rounding as the host does."""
    assert measured["image_embedding_cosine_42"] > 1 - 1e-5
    assert measured["image_embedding_cosine_336"] > 1 - 1e-5


def test_a_prompt_is_sdxls_projected_pooled_output_and_not_the_unprojected_state(measured):
    assert measured["sdxl_text_cosine"] > 1 - 1e-5
    assert measured["sdxl_unprojected_cosine"] < 0.9


def test_a_clip_target_dream_runs_through_the_hosts_tower_under_inference_mode(measured):
    assert measured["dream_shape_kept"] and measured["dream_mean_change"] > 1e-3


def test_an_sd1_checkpoints_clip_is_refused_and_a_clip_l_with_its_projection_is_used_through_it(measured):
    refused, vouched = measured["sd1_projection_False"], measured["sd1_projection_True"]
    assert not refused["accepted"] and "use SDXL's clip_g with clip_vision_g.safetensors" in refused["message"]
    assert vouched["accepted"] and vouched["projected_cosine"] > 1 - 1e-5 and vouched["unprojected_cosine"] < 0.9
