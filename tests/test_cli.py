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
