"""`vae-enhance enhance` over folders with bad files: good ones done, bad ones reported, inputs and existing outputs
never overwritten, atomic writes that survive an interrupt, out-of-memory advice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from test_hard_inputs import png_bomb  # a sibling test module: the same hand-made bomb

import vae_enhance as ve
from vae_enhance import batch
from vae_enhance.cli import main
from vae_enhance.hub import save_model


@pytest.fixture(scope="module")
def model_dir(tiny_model, tmp_path_factory) -> Path:
    return save_model(tiny_model, tmp_path_factory.mktemp("model") / "tiny")


def _photo(seed: int, shape=(20, 24, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _run(model_dir, *args) -> int:
    return main(["enhance", *map(str, args), "--model", str(model_dir), "--device", "cpu"])


def _mixed_folder(folder: Path) -> Path:
    """Three good photos (one gray, one 16-bit RGBA) and five bad files, all with image extensions."""
    folder.mkdir(parents=True, exist_ok=True)
    ve.write_image(folder / "good.png", _photo(0))
    ve.write_image(folder / "gray.jpg", _photo(1, (16, 18)))
    ve.write_image(folder / "deep.tif", _photo(2, (12, 14, 4)).astype(np.uint16) * 257)
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.jpg").write_text("not a photo\n")
    good = (folder / "good.png").read_bytes()
    (folder / "cut.png").write_bytes(good[: len(good) // 2])
    (folder / "bomb.png").write_bytes(png_bomb(60000, 60000))
    (folder / "readme.txt").write_text("not an image extension: ignored\n")
    return folder


def test_folder_with_bad_files(model_dir, tmp_path, capsys):
    inputs = _mixed_folder(tmp_path / "in")
    before = {p.name: p.read_bytes() for p in inputs.iterdir()}
    assert _run(model_dir, inputs, "-o", tmp_path / "out") == 1
    out, err = capsys.readouterr()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "deep_denoised.png",
        "good_denoised.png",
        "gray_denoised.png",
    ]
    assert ve.read_image(tmp_path / "out" / "deep_denoised.png").dtype == np.uint16
    assert ve.read_image(tmp_path / "out" / "deep_denoised.png").shape == (12, 14, 4)
    assert ve.read_image(tmp_path / "out" / "gray_denoised.png").shape == (16, 18)
    assert "enhanced 3 of 7" in out
    lines = err.splitlines()
    for name, reason in [
        ("empty.png", "empty"),
        ("notes.jpg", "not an image"),
        ("cut.png", "truncated"),
        ("bomb.png", "limit"),
    ]:
        assert any(name in line and reason in line for line in lines), (name, err)
    assert "4 input(s) failed" in err and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in inputs.iterdir()} == before  # inputs untouched


def test_an_input_is_never_overwritten_even_with_overwrite(model_dir, tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    ve.write_image(folder / "a.png", _photo(0))
    ve.write_image(folder / "a_denoised.png", _photo(1))  # an input that is also a's output name
    original = (folder / "a_denoised.png").read_bytes()
    assert _run(model_dir, folder, "-o", folder, "--overwrite") == 1
    err = capsys.readouterr().err
    assert "would replace an input file" in err
    assert (folder / "a_denoised.png").read_bytes() == original
    assert (folder / "a_denoised_denoised.png").is_file()  # the other input was still done


def test_existing_outputs_are_kept_without_overwrite(model_dir, tmp_path, capsys):
    ve.write_image(tmp_path / "a.png", _photo(0))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a_denoised.png").write_bytes(b"precious")
    assert _run(model_dir, tmp_path / "a.png", "-o", tmp_path / "out") == 0
    assert "skipped" in capsys.readouterr().out
    assert (tmp_path / "out" / "a_denoised.png").read_bytes() == b"precious"
    assert _run(model_dir, tmp_path / "a.png", "-o", tmp_path / "out", "--overwrite") == 0
    assert ve.read_image(tmp_path / "out" / "a_denoised.png").shape == (20, 24, 3)


def test_subfolders_are_mirrored_and_the_output_folder_is_not_read_back(model_dir, tmp_path, capsys):
    folder = tmp_path / "photos"
    for sub in ("2023", "2024"):
        (folder / sub).mkdir(parents=True)
        ve.write_image(folder / sub / "beach.png", _photo(len(sub)))  # same name in two folders
    out = folder / "enhanced"  # the output folder lies inside the input folder
    assert _run(model_dir, folder, "-o", out) == 0
    assert _run(model_dir, folder, "-o", out) == 0  # a second run finds only its earlier outputs: all skipped
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == ["2023/beach_denoised.png", "2024/beach_denoised.png"]
    assert "enhanced 0 of 2" in capsys.readouterr().out


def test_the_same_file_twice_and_two_files_with_one_output(model_dir, tmp_path, capsys):
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    ve.write_image(tmp_path / "x" / "a.png", _photo(0))
    ve.write_image(tmp_path / "y" / "a.jpg", _photo(1))
    x = tmp_path / "x" / "a.png"
    assert _run(model_dir, x, x, tmp_path / "y" / "a.jpg", "-o", tmp_path / "out") == 1
    out, err = capsys.readouterr()
    assert "enhanced 1 of 3" in out
    assert "also the output of" in err and "a.jpg" in err


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), "smaller --tile"),
        (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 GB"), "smaller --tile"),
        (MemoryError(), "smaller --tile"),
        (ZeroDivisionError("a bug"), "unexpected error (ZeroDivisionError: a bug); please report it"),
    ],
)
def test_out_of_memory_and_bugs_are_reported_per_file(model_dir, tmp_path, capsys, monkeypatch, error, message):
    for i in range(3):
        ve.write_image(tmp_path / f"img{i}.png", _photo(i))
    real = batch.enhance

    def flaky(model, img, scale, **kwargs):
        if np.array_equal(img, _photo(1)):
            raise error
        return real(model, img, scale, **kwargs)

    monkeypatch.setattr(batch, "enhance", flaky)
    assert _run(model_dir, tmp_path, "-o", tmp_path / "out") == 1
    out, err = capsys.readouterr()
    assert "enhanced 2 of 3" in out
    assert "img1.png" in err and message in err and "Traceback" not in err


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_real_cuda_out_of_memory_advises_a_smaller_tile(model_dir, tmp_path, capsys):
    ve.write_image(tmp_path / "big.png", _photo(0, (3072, 3072, 3)))
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(256 * 2**20 / total)  # a 256 MB GPU
    try:
        argv = ["enhance", str(tmp_path / "big.png"), "-o", str(tmp_path / "out"), "--model", str(model_dir)]
        assert main([*argv, "--device", "cuda", "--tile", "0"]) == 1
        assert "smaller --tile" in capsys.readouterr().err
        assert main([*argv, "--device", "cuda", "--tile", "128"]) == 0  # the advice works
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    assert ve.read_image(tmp_path / "out" / "big_denoised.png").shape == (3072, 3072, 3)


def test_interrupt_leaves_complete_files_only(model_dir, tmp_path, capsys, monkeypatch):
    for i in range(4):
        ve.write_image(tmp_path / f"img{i}.png", _photo(i))
    calls = []
    real_replace = os.replace

    def replace_then_interrupt(src, dst):
        calls.append(dst)
        if len(calls) == 3:  # the third file is fully written to its temp file, then Ctrl-C
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(ve.image_io.os, "replace", replace_then_interrupt)
    assert _run(model_dir, tmp_path, "-o", tmp_path / "out") == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "Traceback" not in err
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["img0_denoised.png", "img1_denoised.png"]  # no temp file, no partial third
    for name in names:
        assert ve.read_image(tmp_path / "out" / name).shape == (20, 24, 3)


def test_sigint_in_a_real_process(model_dir, tmp_path):
    """Ctrl-C at a random moment of a real run: exit 130, and every file left behind is complete."""
    (tmp_path / "in").mkdir()
    for i in range(40):
        ve.write_image(tmp_path / "in" / f"img{i:02d}.png", _photo(i, (64, 64, 3)))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "vae_enhance", "enhance", str(tmp_path / "in"), "-o", str(out)]
    proc = subprocess.Popen(
        [*cmd, "--model", str(model_dir), "--device", "cpu"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None and len(list(out.glob("*.png"))) < 3:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("the run finished before the interrupt landed")
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    files = list(out.iterdir())
    assert files and all(f.suffix == ".png" and not f.name.startswith(".") for f in files)
    for f in files:
        assert ve.read_image(f).shape == (64, 64, 3)


@pytest.mark.parametrize(
    ("setup", "argv", "message"),
    [
        (lambda t: (t / "out").write_text("x"), ["{t}/in", "-o", "{t}/out"], "is a file"),
        (lambda t: (t / "empty").mkdir(), ["{t}/empty", "-o", "{t}/out"], "no image files found"),
        (lambda t: None, ["{t}/in", "-o", "{t}/out", "--tile", "-5"], "--tile"),
    ],
    ids=["output-is-a-file", "no-images", "negative-tile"],
)
def test_bad_batch_arguments(model_dir, tmp_path, capsys, setup, argv, message):
    (tmp_path / "in").mkdir()
    ve.write_image(tmp_path / "in" / "a.png", _photo(0))
    setup(tmp_path)
    assert _run(model_dir, *[a.format(t=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_enhance_paths_takes_typed_options(model_dir, tmp_path, capsys):
    (tmp_path / "in").mkdir()
    ve.write_image(tmp_path / "in" / "a.png", _photo(5))
    options = batch.EnhanceOptions(inputs=(tmp_path / "in",), output=tmp_path / "out", scale=2, model=model_dir)
    assert batch.enhance_paths(options) == 0
    assert ve.read_image(tmp_path / "out" / "a_x2.png").shape == (40, 48, 3)
    with pytest.raises(ValueError, match="--format must be one of"):
        batch.enhance_paths(batch.EnhanceOptions(inputs=(tmp_path / "in",), output=tmp_path / "o2", fmt="gif"))


def test_noise_level_option(model_dir, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    ve.write_image(src / "a.png", np.full((16, 16, 3), 128, np.uint8))
    assert _run(model_dir, src, "-o", tmp_path / "out", "--noise-level", "12") == 0
    assert (tmp_path / "out" / "a_denoised.png").is_file()
    assert _run(model_dir, src, "-o", tmp_path / "out2", "--noise-level", "300") == 2
    assert "--noise-level must be from 0 to 255" in capsys.readouterr().err
    assert not (tmp_path / "out2").exists()


def test_self_ensemble_option(model_dir, tmp_path, monkeypatch):
    src = tmp_path / "in"
    src.mkdir()
    ve.write_image(src / "a.png", _photo(0))
    seen = []
    real_enhance = batch.enhance
    monkeypatch.setattr(batch, "enhance", lambda *a, **kw: seen.append(kw["self_ensemble"]) or real_enhance(*a, **kw))
    assert _run(model_dir, src, "-o", tmp_path / "plain") == 0
    assert _run(model_dir, src, "-o", tmp_path / "best", "--self-ensemble") == 0
    assert seen == [False, True]
    best = ve.read_image(tmp_path / "best" / "a_denoised.png")
    expected = ve.enhance(ve.load_model(model_dir, device="cpu"), _photo(0), self_ensemble=True)
    np.testing.assert_array_equal(best, expected)
