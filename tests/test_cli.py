import subprocess
import sys
from pathlib import Path

import dream_core as dc
from dream_core.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_dream_end_to_end_in_a_subprocess(tmp_path):
    output = tmp_path / "dream.png"
    result = subprocess.run(
        [sys.executable, "-m", "dream_core", "dream", str(ROOT / "assets" / "example.jpg"), "-o", str(output),
         "--weights", "random", "--size", "96", "--steps", "2", "--octaves", "2",
         "--layers", "inception3a:1.0", "inception3b@7:0.5", "--device", "cpu"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"wrote {output}" in result.stdout
    dream = dc.load_image(output)
    assert dream.shape == (1, 3, 72, 96)


def test_help_lists_backbones_and_layers(capsys):
    try:
        main(["dream", "--help"])
    except SystemExit:
        pass
    text = capsys.readouterr().out
    for name in dc.backbone_names():
        assert name in text
    assert "inception4c (512)" in text and "relu4_3 (512)" in text and "Mixed_6b (768)" in text


def test_bad_layer_is_an_error_message_not_a_traceback(tmp_path, capsys):
    image = tmp_path / "in.png"
    dc.save_image(dc.load_image(ROOT / "assets" / "example.jpg")[..., :64, :64], image)
    code = main(["dream", str(image), "--weights", "random", "--layers", "mixed4c", "--steps", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "'mixed4c' is not a layer of googlenet" in err and "Traceback" not in err
    assert not (tmp_path / "in_dream.png").exists()
    code = main(["dream", str(image), "--weights", "random", "--layers", "inception4c:lots"])
    assert code == 2 and "cannot read 'inception4c:lots'" in capsys.readouterr().err


def test_the_keras_recipe_from_the_readme_runs_on_its_aliases(tmp_path):
    # README: --backbone inception_v3 --layers mixed4:1.0 mixed5:1.5 mixed6:2.0 mixed7:2.5 --grad-norm std --crop 2
    output = tmp_path / "keras.png"
    code = main(["dream", str(ROOT / "assets" / "example.jpg"), "-o", str(output), "--weights", "random",
                 "--size", "160", "--steps", "1", "--octaves", "1", "--backbone", "inception_v3",
                 "--layers", "mixed4:1.0", "mixed5:1.5", "mixed6:2.0", "mixed7:2.5", "--grad-norm", "std",
                 "--crop", "2"])
    assert code == 0 and dc.load_image(output).shape == (1, 3, 120, 160)


def test_style_blends_several_styles_and_names_bad_weights(tmp_path, capsys):
    content, first, second = (tmp_path / f"{name}.png" for name in ("content", "first", "second"))
    picture = dc.load_image(ROOT / "assets" / "example.jpg")
    dc.save_image(picture[..., :64, :80], content)
    dc.save_image(picture[..., 100:164, 100:164], first)
    dc.save_image(dc.load_image(ROOT / "assets" / "guide.jpg")[..., :64, :64], second)
    common = ["--weights", "random", "--steps", "2", "--optimizer", "adam"]
    blended, alone = tmp_path / "blended.png", tmp_path / "alone.png"
    assert main(["style", str(content), str(first), str(second), "-o", str(blended), "--style-weights", "3", "1",
                 "--init", "noise", "--statistic", "mean_cov", "--pooling", "avg", *common]) == 0
    assert dc.load_image(blended).shape == (1, 3, 64, 80)
    assert main(["style", str(content), str(first), str(second), "-o", str(alone), "--style-weights", "1", "0",
                 *common]) == 0
    assert main(["style", str(content), str(first), "-o", str(tmp_path / "first.png"), *common]) == 0
    assert (dc.load_image(alone) - dc.load_image(tmp_path / "first.png")).abs().max() <= 1 / 255
    capsys.readouterr()
    code = main(["style", str(content), str(first), str(second), "--style-weights", "1", *common])
    assert code == 2 and "--style-weights: 1 weights for 2 styles" in capsys.readouterr().err
    code = main(["style", str(content), str(first), "--style-layers", "relu1_1:heavy", *common])
    assert code == 2 and "cannot read 'relu1_1:heavy'" in capsys.readouterr().err
    assert not (tmp_path / "content_style.png").exists()
