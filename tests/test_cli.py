"""The command line (`main(argv)` exit codes and output): enhance folders, eval tables, errors without tracebacks."""

import re

import numpy as np
import pytest

import vae_enhance as ve
from vae_enhance.cli import main

MEAN_ROW = re.compile(r"^\| \*\*mean of (\d+)\*\* \|  \| (?:(-?\d+\.\d\d) \| )?(-?\d+\.\d\d) \| \d+\.\d\d \|$", re.M)


@pytest.fixture
def eval_data(make_folder):
    return make_folder("evalset", count=2, size=(40, 44), seed=1)


@pytest.mark.parametrize(("scale", "suffix"), [(1, "_denoised"), (2, "_x2")])
def test_enhance_folder(trained_dir, make_folder, tmp_path, capsys, scale, suffix):
    inputs = make_folder("in", count=2, size=(24, 30))
    out = tmp_path / "out"
    args = [
        "enhance",
        str(inputs),
        "-o",
        str(out),
        "--model",
        str(trained_dir),
        "--device",
        "cpu",
        "--scale",
        str(scale),
    ]
    assert main(args) == 0
    written = sorted(p.name for p in out.iterdir())
    assert written == [f"img0{suffix}.png", f"img1{suffix}.png"]
    for name in written:
        assert ve.read_image(out / name).shape == (24 * scale, 30 * scale, 3)
    assert "enhanced 2 of 2" in capsys.readouterr().out


def test_enhance_skips_existing_unless_overwrite(trained_dir, make_folder, tmp_path, capsys):
    inputs = make_folder("in", count=1, size=(16, 16))
    out = tmp_path / "out"
    out.mkdir()
    ve.write_image(out / "img0_denoised.png", np.zeros((3, 3), np.uint8))
    args = ["enhance", str(inputs / "img0.png"), "-o", str(out), "--model", str(trained_dir), "--device", "cpu"]
    assert main(args) == 0
    assert "skipped" in capsys.readouterr().out
    assert ve.read_image(out / "img0_denoised.png").shape == (3, 3)
    assert main([*args, "--overwrite", "--format", "tif", "--tile", "8"]) == 0
    assert ve.read_image(out / "img0_denoised.tif").shape == (16, 16, 3)


def test_enhance_reports_missing_and_broken_inputs(trained_dir, make_folder, tmp_path, capsys):
    inputs = make_folder("in", count=1, size=(16, 16))
    (inputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    args = [
        "enhance",
        str(inputs),
        str(tmp_path / "nope.jpg"),
        "-o",
        str(tmp_path / "out"),
        "--model",
        str(trained_dir),
    ]
    assert main([*args, "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert "nope.jpg" in err and "broken.png" in err and "Traceback" not in err
    assert (tmp_path / "out" / "img0_denoised.png").is_file()  # the good file is still done


@pytest.mark.parametrize(
    ("args", "baseline", "title"),
    [
        (["--task", "denoise", "--sigma", "25"], "NL-means", "denoise sigma 25"),
        (["--task", "sr", "--scale", "2"], "bicubic", "SR x2"),
    ],
)
def test_eval_prints_table_with_mean_and_baseline(trained_dir, eval_data, capsys, args, baseline, title):
    assert main(["eval", *args, "--data", str(eval_data), "--model", str(trained_dir), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert title in out
    header = next(line for line in out.splitlines() if line.startswith("| image"))
    assert baseline in header and "vae-enhance" in header
    assert out.count("| img") == 2  # one row per image
    mean = MEAN_ROW.search(out)
    assert mean and mean.group(1) == "2" and mean.group(2) is not None


def test_eval_quiet_without_baseline(trained_dir, eval_data, capsys):
    args = ["eval", "--task", "sr", "--scale", "2", "--data", str(eval_data), "--model", str(trained_dir)]
    assert main([*args, "--device", "cpu", "--quiet", "--no-baseline"]) == 0
    out = capsys.readouterr().out
    assert "bicubic" not in out and "| img" not in out
    mean = MEAN_ROW.search(out)
    assert mean and mean.group(2) is None


@pytest.mark.parametrize(
    "argv",
    [
        ["eval", "--task", "sr", "--data", "{tmp}/missing", "--model", "{model}"],
        ["eval", "--task", "denoise", "--data", "{data}", "--model", "{tmp}/no-model"],
        ["enhance", "{data}", "-o", "{tmp}/out", "--model", "{tmp}/no-model"],
        ["train", "--data", "{tmp}/missing", "--out", "{tmp}/run", "--steps", "1", "--preset", "tiny"],
        ["train", "--data", "{data}", "--out", "{tmp}/run", "--steps", "1", "--preset", "tiny", "--patch", "40"],
    ],
    ids=["eval-data", "eval-model", "enhance-model", "train-data", "train-patch"],
)
def test_bad_paths_and_arguments_exit_nonzero_with_a_message(trained_dir, eval_data, tmp_path, capsys, argv):
    argv = [a.format(tmp=tmp_path, model=trained_dir, data=eval_data) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"vae-enhance {argv[0]}: error:" in err and "Traceback" not in err


def test_argparse_rejects_unknown_scale(capsys):
    with pytest.raises(SystemExit) as info:
        main(["enhance", "x.png", "-o", "out", "--scale", "3"])
    assert info.value.code == 2
    assert "--scale" in capsys.readouterr().err
