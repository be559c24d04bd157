"""Dream Zoom, Dream Video Frames (an IMAGE batch), Dream Video (a VIDEO streamed from file to file)."""

from __future__ import annotations

import itertools
import shutil
from dataclasses import asdict

import torch

from ..dream_core import (DEFAULT_FLOW, FLOWS, HOLD, Backbone, LayerTerm, Objective, OctaveSettings, from_bhwc,
                          prepare_mask, to_bhwc, video_file_task, video_task, zoom_task)
from . import host
from .dream_nodes import SEED_MAX, dream_objective, precision_input

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


def _what_to_dream() -> dict:
    return {
        "layers": ("DD_LAYERS", {"tooltip": "What to dream, from Select Dream Layer. Optional when an objective "
                   "is connected."}),
        "objective": ("DD_OBJECTIVE", {"tooltip": "Terms added to the layer objective (or dreamed alone): a CLIP "
                      "Embedding Target, a Style Loss, a Content Loss."}),
    }


def _video_inputs() -> dict:
    """What the two video nodes share after their source: how the dream follows the motion."""
    return {
        "backbone": ("DD_BACKBONE", {"tooltip": "From Load Dream Backbone."}),
        "carry": ("FLOAT", {"default": 0.8, "min": 0.0, "max": 1.0, "step": 0.05, "tooltip":
                  "How much of the last dreamed frame each frame starts from (warped along the motion); "
                  "0 = every frame dreamed on its own (flicker)."}),
        "flow": (list(FLOWS), {"default": DEFAULT_FLOW, "tooltip": "How the last dream follows the motion: "
                 "farneback or dis optical flow (OpenCV), raft / raft_large (torchvision's RAFT, best on "
                 "a GPU; its weights are fetched once into models/deepdream, checksum checked), or none "
                 "(a plain blend, which smears what moves)."}),
        **_frame_inputs(5),
    }


def _video_options() -> dict:
    return {
        **_what_to_dream(),
        **_octaves_input(),
        "hold": ("FLOAT", {"default": HOLD, "min": 0.0, "max": 1.0, "step": 0.05, "tooltip": "Where the last "
                 "dream was carried, steps move only 1 - hold x carry as far: the dream stays on what moves "
                 "while new parts catch up. 0 = every frame dreams at full strength (more flicker)."}),
    }


def _dream_settings(octaves: OctaveSettings | None, steps: int, step_size: float, jitter: int) -> dict:
    return {**asdict(octaves or ONE_OCTAVE), "steps": steps, "step_size": step_size, "jitter": jitter}


class DreamZoom:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "The first frame (the first image of the batch)."}),
                "backbone": ("DD_BACKBONE", {"tooltip": "From Load Dream Backbone."}),
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
                **_what_to_dream(),
                **_octaves_input(),
                "layers_end": ("DD_LAYERS", {"tooltip": "Morph the layers from 'layers' (first frame) to these "
                               "(last frame); the objective stays throughout."}),
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

    def zoom(self, image: torch.Tensor, backbone: Backbone, frames: int, zoom: float, rotate: float, shift_x: float,
             shift_y: float, steps_per_frame: int, step_size: float, jitter: int, seed: int,
             layers: tuple[LayerTerm, ...] | None = None, objective: Objective | None = None,
             octaves: OctaveSettings | None = None, layers_end: tuple[LayerTerm, ...] | None = None,
             mask: torch.Tensor | None = None, precision: str = "auto") -> tuple[torch.Tensor]:
        picture = from_bhwc(image)[:1]
        start = dream_objective(layers, objective, "Dream Zoom")
        end = None if layers_end is None else dream_objective(layers_end, objective, "Dream Zoom")
        task = zoom_task(picture, backbone, start, frames, zoom=zoom, rotate=rotate, shift=(shift_x, shift_y),
                         objective_end=end, seed=seed, mask=mask,
                         **_dream_settings(octaves, steps_per_frame, step_size, jitter))
        return (to_bhwc(host.run(task, precision)),)


class DreamVideo:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "frames": ("IMAGE", {"tooltip": "The video's frames as an IMAGE batch (Get Video Components, "
                           "VideoHelperSuite's Load Video). For long clips use Dream Video, which streams."}),
                **_video_inputs(),
            },
            "optional": {
                **_video_options(),
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

    def dream(self, frames: torch.Tensor, backbone: Backbone, carry: float, flow: str, steps_per_frame: int,
              step_size: float, jitter: int, seed: int, layers: tuple[LayerTerm, ...] | None = None,
              objective: Objective | None = None, octaves: OctaveSettings | None = None, hold: float = HOLD,
              mask: torch.Tensor | None = None, precision: str = "auto") -> tuple[torch.Tensor]:
        video = from_bhwc(frames, "frames")
        objective = dream_objective(layers, objective, "Dream Video Frames")
        masks = None if mask is None else prepare_mask(mask, video.shape[0], tuple(video.shape[-2:]))[:, 0]
        task = video_task(video, backbone, objective, masks=masks, carry=carry, hold=hold, flow=flow,
                          flow_weights_dir=host.weights_dir(), seed=seed,
                          **_dream_settings(octaves, steps_per_frame, step_size, jitter))
        return (to_bhwc(host.run(task, precision)),)


class DreamVideoStream:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "video": ("VIDEO", {"tooltip": "The clip, from Load Video: decoded, dreamed and encoded a frame at "
                          "a time, so its length and size do not fill the memory. Sound and frame rate are kept."}),
                **_video_inputs(),
            },
            "optional": {
                **_video_options(),
                "mask": ("MASK", {"tooltip": "Where each frame may change (one mask for every frame)."}),
                **precision_input(),
            },
            "hidden": {"prompt": "PROMPT", "unique_id": "UNIQUE_ID"},
        }

    RETURN_TYPES = ("VIDEO",)
    RETURN_NAMES = ("video",)
    OUTPUT_TOOLTIPS = ("The dreamed clip (MP4, H.264, with the source's sound), for Save Video.",)
    FUNCTION = "dream"
    CATEGORY = "DeepDream/animation"
    DESCRIPTION = ("Dreams a whole video in bounded memory, a frame at a time, the dream following the motion as in "
                   "Dream Video Frames. Resumable: frames are kept in output/deepdream/video_frames until the clip "
                   "is done, and after a Cancel or a restart the same workflow continues from the last frame.")

    def dream(self, video, backbone: Backbone, carry: float, flow: str, steps_per_frame: int, step_size: float,
              jitter: int, seed: int, layers: tuple[LayerTerm, ...] | None = None, objective: Objective | None = None,
              octaves: OctaveSettings | None = None, hold: float = HOLD, mask: torch.Tensor | None = None,
              precision: str = "auto", prompt: dict | None = None, unique_id: str | None = None) -> tuple:
        dreamed = dream_objective(layers, objective, "Dream Video")
        source = host.video_source(video)
        settings = dict(carry=carry, hold=hold, flow=flow, seed=seed,
                        **_dream_settings(octaves, steps_per_frame, step_size, jitter))
        key = host.run_key(prompt, unique_id, host.source_key(source),
                           None if prompt else [settings, repr(layers), dreamed.description, id(objective),
                                                backbone.name, backbone.source, precision])
        folder = host.work_folder("video_frames", key)
        task = video_file_task(source, host.temp_folder(f"dream_video_{key}.mp4"), folder, backbone, dreamed,
                               masks=None if mask is None else itertools.repeat(mask), flow_weights_dir=host.weights_dir(),
                               **settings)
        movie = host.run(task, precision)
        shutil.rmtree(folder, ignore_errors=True)  # the clip is done: the movie holds it
        return (host.video_output(movie),)
