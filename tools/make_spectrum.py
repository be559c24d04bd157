"""Make dream_core/data/natural_spectrum.safetensors: the amplitude spectrum of natural photographs that MaCo
feature visualisation keeps fixed (it optimises only the phase).

The photographs are scikit-image's bundled colour pictures that need no download (astronaut: NASA, public
domain; chelsea, coffee: CC0; rocket: public domain). Each is cut into 256 px squares (the whole picture
resized so its short side is 256, and squares every 128 px along the long side), taken into the colour space
the renderer decorrelates (logit of the pixels, unmixed by ``dream_core.param.COLOUR_MIX``), and its 2-D
amplitude spectrum (``rfft2``, orthonormal) is averaged in the log over all squares, per channel. The file holds
the log-amplitude on a 128 x 65 grid of frequencies, rows from -1/2 to 1/2 (zero in the middle), columns
from 0 to 1/2; the renderer samples it at any picture size.

    pip install scikit-image        # for this tool only
    python tools/make_spectrum.py   # writes the file and prints its falloff
"""

from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
PICTURES = ("astronaut", "chelsea", "coffee", "rocket")
SIDE, GRID = 256, (128, 65)


def squares(picture: torch.Tensor) -> list[torch.Tensor]:
    """256 px squares of a (3, H, W) picture resized to a short side of 256, every 128 px along the long side."""
    height, width = picture.shape[-2:]
    scale = SIDE / min(height, width)
    size = (max(SIDE, round(height * scale)), max(SIDE, round(width * scale)))
    picture = torch.nn.functional.interpolate(picture[None], size=size, mode="bilinear", antialias=True)[0]
    tall = size[0] > size[1]
    long_side = max(size)
    starts = range(0, long_side - SIDE + 1, SIDE // 2)
    return [picture[:, s:s + SIDE, :SIDE] if tall else picture[:, :SIDE, s:s + SIDE] for s in starts]


def main() -> None:
    from safetensors.torch import save_file
    from skimage import data

    from dream_core.param import COLOUR_MIX

    unmix = torch.linalg.inv(COLOUR_MIX)
    logs = []
    for name in PICTURES:
        picture = torch.from_numpy(getattr(data, name)()).float().movedim(-1, 0) / 255
        for square in squares(picture):
            decorrelated = torch.einsum("ij,jhw->ihw", unmix, torch.logit(square.clamp(1e-3, 1 - 1e-3)))
            amplitude = torch.fft.rfft2(decorrelated - decorrelated.mean((1, 2), keepdim=True), norm="ortho").abs()
            logs.append(amplitude.clamp_min(1e-6).log())
    mean = torch.stack(logs).mean(0)  # (3, 256, 129), fftfreq rows
    centred = torch.fft.fftshift(mean, dim=-2)  # rows -1/2 .. 1/2
    grid = torch.nn.functional.interpolate(centred[None], size=GRID, mode="bilinear", align_corners=True,
                                           antialias=True)[0]
    target = ROOT / "dream_core" / "data" / "natural_spectrum.safetensors"
    save_file({"log_amplitude": grid.contiguous()}, str(target),
              metadata={"pictures": ",".join(f"skimage.data.{n}" for n in PICTURES), "squares": str(len(logs)),
                        "side": str(SIDE)})
    radial = [float(centred[:, SIDE // 2, k].mean()) for k in (1, 4, 16, 64)]
    print(f"{len(logs)} squares of {len(PICTURES)} pictures -> {target.relative_to(ROOT)}; "
          f"log-amplitude at frequencies 1, 4, 16, 64 (of 256): {', '.join(f'{v:.2f}' for v in radial)}")


if __name__ == "__main__":
    main()
