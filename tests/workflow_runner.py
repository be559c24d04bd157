"""Import the pack as ComfyUI does and run API-format prompts on it, with small stand-ins for core nodes.

No pytest here: ``test_stock_install`` runs it in a subprocess that can import only what
``requirements.txt`` installs.
"""

import torch

from clip_standin import ClipText, ClipVision

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
PACK_NAME = "deepdream-nodes-under-test"  # any folder name: ComfyUI imports the pack as a package


def import_pack():
    """Import the repository as ComfyUI does: as a package whose name is its (arbitrary) folder name."""
    import importlib.util
    import sys

    if PACK_NAME not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            PACK_NAME, ROOT / "__init__.py", submodule_search_locations=[str(ROOT)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[PACK_NAME] = module
        spec.loader.exec_module(module)
    return sys.modules[PACK_NAME]


SIZE = (48, 64)
CLIP_WIDTH = 24  # the stand-in CLIP's embedding width, and its text encoder's


def stand_ins(saved):
    """Minimal versions of the core nodes the examples use; KSampler + VAEDecode give a fixed image."""

    from dream_core import resize

    def load_image(image, upload=None):
        from dream_core import load_image as read

        source = {"deepdream_example.jpg": "example.jpg", "deepdream_guide.jpg": "guide.jpg"}[image]
        picture = resize(read(ROOT / "assets" / source), SIZE).movedim(1, -1)
        return picture, torch.zeros(1, *SIZE)

    def load_video(file):
        assert file == "deepdream_example_pan.mp4"
        return VideoStandIn(small_clip())

    def generated(samples, vae):
        return (torch.linspace(0, 1, SIZE[0] * SIZE[1] * 3).reshape(1, *SIZE, 3),)

    return {
        "LoadImage": load_image,
        "SaveImage": lambda images, filename_prefix: saved.append((filename_prefix, images)) or (),
        "PreviewImage": lambda images: (),
        "PreviewAny": lambda source: (),
        "MaskToImage": lambda mask: (mask[..., None].expand(*mask.shape, 3),),
        "LoadVideo": lambda file, upload=None: (load_video(file),),
        "GetVideoComponents": lambda video: (video.get_components(), None, 12.0),
        "CreateVideo": lambda images, fps, audio=None: (images,),
        "SaveVideo": lambda video, filename_prefix, format, codec: saved.append((filename_prefix, frames_of(video)))
        or (),
        "CheckpointLoaderSimple": lambda ckpt_name: ("model", ClipText(width=CLIP_WIDTH), "vae"),
        "CLIPTextEncode": lambda clip, text: ([[torch.zeros(1, 77, 8), {"pooled_output": torch.randn(
            1, CLIP_WIDTH, generator=torch.Generator().manual_seed(len(text)))}]],),
        "CLIPVisionLoader": lambda clip_name: (ClipVision(blocks=48, projection=CLIP_WIDTH),),
        "EmptyLatentImage": lambda width, height, batch_size: ("latent",),
        "KSampler": lambda **inputs: ("latent",),
        "VAEDecode": generated,
    }


class VideoStandIn:
    """Core's ``VideoFromFile`` as the pack uses it: a stream source, and the frames decoded whole."""

    def __init__(self, path):
        self.path = path

    def get_stream_source(self):
        return str(self.path)

    def get_components(self):
        return frames_of(self.path)


def frames_of(video):
    """An IMAGE batch: as it is, or decoded from a movie file (what the streaming node hands on outside the host)."""
    from dream_core import media

    if isinstance(video, torch.Tensor):
        return video
    path = video.path if isinstance(video, VideoStandIn) else video
    return torch.cat(list(media.read_frames(__import__("pathlib").Path(path)))).movedim(1, -1)


def small_clip():
    """The first 3 frames of the bundled pan at the tests' size, as an MP4 (made once per process)."""
    import tempfile
    from pathlib import Path

    from dream_core import media, resize

    folder = Path(tempfile.gettempdir()) / "deepdream-test-clip"
    clip = folder / "pan.mp4"
    if not clip.exists():
        frames = [frame for _, frame in zip(range(3), media.read_frames(ROOT / "assets" / "example_pan.mp4"))]
        for index, frame in enumerate(frames):
            media.save_frame(resize(frame, SIZE), folder, index)
        media.write_movie(folder, 3, folder / ".pan.partial.mp4", 12).replace(clip)
    return clip


def execute(pack, prompt, saved, fast=True, extra=None):
    """Evaluate an API-format prompt in dependency order, inside inference mode as the host does
    (``extra``: more core stand-ins by class type)."""
    core = {**stand_ins(saved), **(extra or {})}
    results = {}

    def run(node_id):
        if node_id in results:
            return results[node_id]
        node = prompt[node_id]
        inputs = {name: run(value[0])[value[1]] if isinstance(value, list) else value
                  for name, value in node["inputs"].items()}
        if node["class_type"] in core:
            output = core[node["class_type"]](**inputs)
        else:
            cls = pack.NODE_CLASS_MAPPINGS[node["class_type"]]
            declared = {**cls.INPUT_TYPES()["required"], **cls.INPUT_TYPES().get("optional", {})}
            assert set(inputs) <= set(declared), f"{node['class_type']}: unknown inputs {set(inputs) - set(declared)}"
            for name, value in inputs.items():  # widget values must be valid choices
                if isinstance(declared[name][0], list):
                    assert value in declared[name][0], (name, value)
            if fast:  # no network in tests, and a few steps are enough to prove the wiring
                inputs = {**inputs, **({"weights": "random init"} if "weights" in inputs else {}),
                          **({"steps": 2} if "steps" in inputs else {}),
                          **({"max_steps": 2} if "max_steps" in inputs else {}),
                          **({"steps_per_frame": 2} if "steps_per_frame" in inputs else {}),
                          **({"frames": 3} if isinstance(inputs.get("frames"), int) else {}),
                          **({"width": SIZE[1], "height": SIZE[0]} if "width" in inputs else {}),
                          **({"optimizer": "adam"} if "optimizer" in inputs else {})}  # L-BFGS starts tiny
            output = getattr(cls(), cls.FUNCTION)(**inputs)
            assert isinstance(output, tuple) and len(output) == len(cls.RETURN_TYPES)
        results[node_id] = output
        return output

    with torch.inference_mode():
        for node_id in prompt:
            run(node_id)
    return results
