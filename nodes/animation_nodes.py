"""Dream Zoom, Dream Video Frames."""

from __future__ import annotations

from dataclasses import asdict

import torch

from ..dream_core import (DEFAULT_FLOW, FLOWS, HOLD, Backbone, LayerTerm, OctaveSettings, from_bhwc, prepare_mask,
                          terms_objective, to_bhwc, video_task, zoom_task)
from . import host
from .dream_nodes import SEED_MAX, precision_input

ONE_OCTAVE = OctaveSettings(octaves=1)  # each frame refines the last one's dream: no pyramid needed by default


def _frame_inputs(steps: int) -> dict:
    return {
        "steps_per_frame": ("INT", {"default": steps, "min": 0, "max": 1000, "tooltip": "Ascent steps per frame "
                            "(per octave with an Octave Pyramid)."}),
        "step_size": ("FLOAT", {"default": 0.01, "min": 0.0, "max": 0.5, "step": 0.001, "round": 0.0001,
                                "tooltip": "How much a pixel changes per step on average (0..1 units)."}),
        "jitter": ("INT", {"default": 32, "min": 0, "max": 256, "tooltip": "Largest random shift before each step."}),
        "seed": ("INT", {"default": 0, "min": 0, "max": SEED_MAX, "tooltip": "Frame i dreams with seed + i."}),
    }


def _octaves_input() -> dict:
    return {"octaves": ("DD_OCTAVES", {"tooltip": "Octave Pyramid per frame; default one octave (each frame "
                        "builds on the dream of the last)."})}


def _dream_settings(octaves: OctaveSettings | None, steps: int, step_size: float, jitter: int) -> dict:
    return {**asdict(octaves or ONE_OCTAVE), "steps": steps, "step_size": step_size, "jitter": jitter}


class DreamZoom:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "The first frame (the first image of the batch)."}),
                "backbone": ("DD_BACKBONE", {"tooltip": "From Load Dream Backbone."}),
                "layers": ("DD_LAYERS", {"tooltip": "What to dream, from Select Dream Layer."}),
                "frames": ("INT", {"default": 30, "min": 1, "max": 10000, "tooltip": "How many frames to make."}),
                "zoom": ("FLOAT", {"default": 1.05, "min": 0.5, "max": 2.0, "step": 0.01,
                                  "tooltip": "Enlargement per frame; below 1 zooms out (borders reflected)."}),
                "rotate": ("FLOAT", {"default": 0.0, "min": -45.0, "max": 45.0, "step": 0.1,
                                    "tooltip": "Degrees per frame, counter-clockwise."}),
                "shift_x": ("FLOAT", {"default": 0.0, "min": -256.0, "max": 256.0, "step": 0.5,
                                     "tooltip": "Pixels per frame to the right."}),
                "shift_y": ("FLOAT", {"default": 0.0, "min": -256.0, "max": 256.0, "step": 0.5,
                                     "tooltip": "Pixels per frame downwards."}),
                **_frame_inputs(5),
            },
            "optional": {
                **_octaves_input(),
                "layers_end": ("DD_LAYERS", {"tooltip": "Morph the objective from 'layers' (first frame) to these "
                               "(last frame)."}),
                "mask": ("MASK", {"tooltip": "Where each frame may change (1 = dream, 0 = keep)."}),
                **precision_input(),
            },
        }

    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("frames",)
    OUTPUT_TOOLTIPS = ("The frames as an IMAGE batch, for Create Video or VideoHelperSuite's Video Combine.",)
    FUNCTION = "zoom"
    CATEGORY = "DeepDream/animation"
    DESCRIPTION = ("The endless zoom into a dream: dream a frame, zoom/rotate/shift it, dream again, frame after "
                   "frame.")

    def zoom(self, image: torch.Tensor, backbone: Backbone, layers: tuple[LayerTerm, ...], frames: int, zoom: float,
             rotate: float, shift_x: float, shift_y: float, steps_per_frame: int, step_size: float, jitter: int,
             seed: int, octaves: OctaveSettings | None = None, layers_end: tuple[LayerTerm, ...] | None = None,
             mask: torch.Tensor | None = None, precision: str = "auto") -> tuple[torch.Tensor]:
        picture = from_bhwc(image)[:1]
        objective = terms_objective(layers)
        end = None if layers_end is None else terms_objective(layers_end)
        task = zoom_task(picture, backbone, objective, frames, zoom=zoom, rotate=rotate, shift=(shift_x, shift_y),
                         objective_end=end, seed=seed, mask=mask,
                         **_dream_settings(octaves, steps_per_frame, step_size, jitter))
        return (to_bhwc(host.run(task, precision)),)


class DreamVideo:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "frames": ("IMAGE", {"tooltip": "The video's frames as an IMAGE batch (Get Video Components, "
                           "VideoHelperSuite's Load Video)."}),
                "backbone": ("DD_BACKBONE", {"tooltip": "From Load Dream Backbone."}),
                "layers": ("DD_LAYERS", {"tooltip": "What to dream, from Select Dream Layer."}),
                "carry": ("FLOAT", {"default": 0.8, "min": 0.0, "max": 1.0, "step": 0.05, "tooltip":
                          "How much of the last dreamed frame each frame starts from (warped along the motion); "
                          "0 = every frame dreamed on its own (flicker)."}),
                "flow": (list(FLOWS), {"default": DEFAULT_FLOW, "tooltip": "How the last dream follows the motion: "
                         "farneback or dis optical flow (OpenCV), raft / raft_large (torchvision's RAFT, best on "
                         "a GPU; its weights are fetched once into models/deepdream, checksum checked), or none "
                         "(a plain blend, which smears what moves)."}),
                **_frame_inputs(5),
            },
            "optional": {
                **_octaves_input(),
                "hold": ("FLOAT", {"default": HOLD, "min": 0.0, "max": 1.0, "step": 0.05, "tooltip": "Where the last "
                         "dream was carried, steps move only 1 - hold x carry as far: the dream stays on what moves "
                         "while new parts catch up. 0 = every frame dreams at full strength (more flicker)."}),
                "mask": ("MASK", {"tooltip": "Where each frame may change: one mask for all, or one per frame."}),
                **precision_input(),
            },
        }

    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("frames",)
    OUTPUT_TOOLTIPS = ("The dreamed frames, same count and size, for Create Video or Video Combine.",)
    FUNCTION = "dream"
    CATEGORY = "DeepDream/animation"
    DESCRIPTION = ("Dreams every frame of a video so the dream sticks to what moves: each frame starts from the "
                   "last dreamed frame warped by the optical flow; occluded parts start from the source frame.")

    def dream(self, frames: torch.Tensor, backbone: Backbone, layers: tuple[LayerTerm, ...], carry: float, flow: str,
              steps_per_frame: int, step_size: float, jitter: int, seed: int,
              octaves: OctaveSettings | None = None, hold: float = HOLD, mask: torch.Tensor | None = None,
              precision: str = "auto") -> tuple[torch.Tensor]:
        video = from_bhwc(frames, "frames")
        objective = terms_objective(layers)
        masks = None if mask is None else prepare_mask(mask, video.shape[0], tuple(video.shape[-2:]))[:, 0]
        task = video_task(video, backbone, objective, masks=masks, carry=carry, hold=hold, flow=flow,
                          flow_weights_dir=host.weights_dir(), seed=seed,
                          **_dream_settings(octaves, steps_per_frame, step_size, jitter))
        return (to_bhwc(host.run(task, precision)),)
