"""Training: the data pipeline, a tiny CLI run and what it writes, --resume, and torchrun with 2 CPU processes."""

import csv
import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch
from conftest import REPO, TRAIN_ARGS, photo

import vae_enhance as ve
from vae_enhance import train as train_module
from vae_enhance.cli import main
from vae_enhance.config import PRESETS
from vae_enhance.data import CropSampler, list_images, load_images, load_rgb8, split
from vae_enhance.hub import save_model
from vae_enhance.model import LumaReader, VAEEnhancer
from vae_enhance.train import OVER_TELL_MARGIN, Run, TrainConfig, estimator_loss, over_tell, train, warm_start


def _log_rows(out):
    with (out / "log.csv").open() as f:
        return list(csv.DictReader(f))


def test_run_writes_everything(trained_dir):
    for name in ("config.json", "model.safetensors", "log.csv", "curves.png", "checkpoint.pt", "train_config.json"):
        assert (trained_dir / name).is_file(), name
    assert json.loads((trained_dir / "train_config.json").read_text())["steps"] == 4
    curves = ve.read_image(trained_dir / "curves.png")
    assert curves.ndim == 3 and min(curves.shape[:2]) > 100


def test_log_has_per_channel_kl_and_validation(trained_dir):
    rows = _log_rows(trained_dir)
    latent = PRESETS["tiny"].latent_channels
    assert [int(r["step"]) for r in rows] == [2, 4]
    for row in rows:
        for key in ["loss", "kl", "val_score", "val_denoise25", "val_camera", "val_x2", "val_x4"] + [
            f"kl_c{c}" for c in range(latent)
        ]:
            assert math.isfinite(float(row[key])), key
        assert float(row["kl_c0"]) >= 0


def test_trained_model_loads_and_enhances(trained_dir):
    model = ve.load_model(trained_dir, device="cpu")
    assert model.config == PRESETS["tiny"]
    img = photo(np.random.default_rng(1), 20, 24)
    assert ve.enhance(model, img, 2).shape == (40, 48, 3)


def test_resume_continues_from_the_checkpoint(trained_dir, train_data, tmp_path, capsys):
    out = tmp_path / "resumed"
    shutil.copytree(trained_dir, out)
    before = _checkpoint(out)
    assert before["step"] == 4
    with (out / "log.csv").open("a") as f:  # a row logged after the checkpoint, as an interrupted run leaves
        f.write("5" + "," * (len(_log_rows(out)[0]) - 1) + "\n")
    code = main(["train", "--data", str(train_data), "--out", str(out), "--steps", "6", "--resume", *TRAIN_ARGS])
    assert code == 0
    assert "at step 4" in capsys.readouterr().out
    after = _checkpoint(out)
    assert after["step"] == 6
    assert not torch.equal(after["model"]["decoder.out.weight"], before["model"]["decoder.out.weight"])
    assert [int(r["step"]) for r in _log_rows(out)] == [2, 4, 6]  # rows past the checkpoint dropped, header kept
    ve.load_model(out, device="cpu")


def _checkpoint(out):
    return torch.load(out / "checkpoint.pt", weights_only=True)


def _assert_same_state(a, b, path="checkpoint"):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            _assert_same_state(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same_state(x, y, f"{path}[{i}]")
    else:
        assert a == b, path


# Every part of a step that draws random numbers: real-photo noise, JPEG, best-of-K, a told/blind noise level.
EXACT_ARGS = [
    *("--camera-fraction", "0.3", "--correlated-fraction", "0.2", "--jpeg-fraction", "0.5", "--edge-fraction", "0.5"),
    *("--best-of", "2", "--over-tell", "0.5"),
]


def test_resumed_run_equals_an_uninterrupted_one(train_data, tmp_path):
    whole, legs = tmp_path / "whole", tmp_path / "legs"
    common = ["--data", str(train_data), "--steps", "6", *TRAIN_ARGS, *EXACT_ARGS]
    assert main(["train", "--out", str(whole), *common]) == 0
    assert main(["train", "--out", str(legs), "--stop-at", "3", *common]) == 0
    assert _checkpoint(legs)["step"] == 3
    assert main(["train", "--out", str(legs), "--resume", *common]) == 0
    a, b = _checkpoint(whole), _checkpoint(legs)
    assert a["step"] == b["step"] == 6
    for key in ("model", "ema", "opt", "sched", "crop_gen", "noise_gen", "best"):
        _assert_same_state(a[key], b[key], key)


def test_training_lowers_the_loss(train_data, tmp_path):
    cfg = TrainConfig(data=str(train_data), out=str(tmp_path / "out"), steps=60, preset="tiny", batch=4, patch=32,
                      val_every=60, val_count=1, log_every=10, device="cpu", lr=2e-3, kl_warmup=10)  # fmt: skip
    train(cfg)
    losses = [float(r["loss"]) for r in _log_rows(tmp_path / "out")]
    assert len(losses) == 6
    assert np.mean(losses[-2:]) < 0.8 * np.mean(losses[:2]), losses


def test_warm_start_copies_what_fits(trained_dir, tmp_path):
    # Same shape: every tensor copied, so the new model starts as the old one.
    same = VAEEnhancer(PRESETS["tiny"])
    assert warm_start(same, str(trained_dir)) == (len(same.state_dict()),) * 2
    old = ve.load_model(trained_dir, device="cpu").state_dict()
    assert all(torch.equal(v, old[k]) for k, v in same.state_dict().items())
    # From a v0.1-like shape (no noise-level input, latent at 1/8): what fits is copied, the rest starts fresh.
    older = tmp_path / "older"
    save_model(VAEEnhancer(replace(PRESETS["tiny"], noise_input=False, noise_estimator=False, latent_stride=8)), older)
    grown = VAEEnhancer(PRESETS["tiny"])
    copied, total = warm_start(grown, str(older))
    assert 0 < copied < total
    assert torch.equal(
        grown.state_dict()["prior_net.stem.weight"], ve.load_model(older).state_dict()["prior_net.stem.weight"]
    )


def test_estimator_only_trains_the_estimator_alone(trained_dir, train_data, tmp_path, capsys):
    out = tmp_path / "est"
    args = ["train", "--data", str(train_data), "--out", str(out), "--steps", "4", "--init", str(trained_dir)]
    assert main([*args, "--estimator-only", *TRAIN_ARGS]) == 0
    assert "warm start" in capsys.readouterr().out
    before, after = ve.load_model(trained_dir).state_dict(), ve.load_model(out).state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("noise_estimator.") for k in changed)
    rows = _log_rows(out)
    assert math.isfinite(float(rows[-1]["level_err"])) and math.isfinite(float(rows[-1]["val_level_err"]))
    # Without an estimator there is nothing to train alone.
    shape = ["--shape", '{"noise_estimator": false}']
    assert main([*args, "--out", str(tmp_path / "none"), "--estimator-only", *TRAIN_ARGS, *shape]) == 2
    assert "--estimator-only needs" in capsys.readouterr().err


def test_luma_reader_trains_alone_on_grey_grain(trained_dir, train_data, tmp_path, capsys):
    out = tmp_path / "luma"
    shape = ["--shape", '{"noise_estimator": true, "luma_estimator": true}', "--scales", "1"]
    args = ["train", "--data", str(train_data), "--out", str(out), "--steps", "4", "--init", str(trained_dir)]
    zoom = ["--zoom-max", "6", "--zoom-fraction", "0.8", "--reading-weight", "1"]
    assert main([*args, "--luma-reader", *zoom, *TRAIN_ARGS, *shape]) == 0
    assert "warm start" in capsys.readouterr().out
    saved = json.loads((out / "train_config.json").read_text())
    assert (saved["zoom_max"], saved["zoom_fraction"], saved["reading_weight"]) == (6.0, 0.8, 1.0)
    before, after = ve.load_model(trained_dir).state_dict(), ve.load_model(out).state_dict()
    new = {k for k in after if k not in before}
    assert new and all(k.startswith("noise_estimator.luma.") for k in new)
    assert all(torch.equal(before[k], after[k]) for k in before)  # the VAE and the colour estimator as they were
    assert math.isfinite(float(_log_rows(out)[-1]["level_err"]))
    # Without a luma reader, or with other scales, there is nothing to train alone.
    for extra in (["--scales", "1"], [*shape, "--scales", "1,2"]):
        assert main([*args, "--out", str(tmp_path / "bad"), "--luma-reader", *TRAIN_ARGS, *extra]) == 2
        assert "--luma-reader trains alone" in capsys.readouterr().err


def test_export_ema_writes_the_last_steps_weights_with_parts_from_another_model(trained_dir, tmp_path, monkeypatch):
    sys.path.insert(0, str(REPO / "scripts"))
    import export_ema

    ckpt = torch.load(trained_dir / "checkpoint.pt", map_location="cpu", weights_only=True)
    ema = {k.removeprefix("module."): v for k, v in ckpt["ema"].items() if k.startswith("module.")}
    monkeypatch.setattr(sys, "argv", ["export_ema.py", str(trained_dir / "checkpoint.pt"), str(tmp_path / "last")])
    export_ema.main()
    last = ve.load_model(tmp_path / "last", device="cpu").state_dict()
    assert last.keys() == ema.keys() and all(torch.equal(last[k], ema[k]) for k in ema)

    donor = VAEEnhancer(replace(PRESETS["tiny"], prior_scale=0.5))  # fresh weights: nothing like the trained ones
    save_model(donor, tmp_path / "donor")
    argv = ["export_ema.py", str(trained_dir / "checkpoint.pt"), str(tmp_path / "mixed"), "--parts-from"]
    monkeypatch.setattr(sys, "argv", [*argv, str(tmp_path / "donor"), "--parts", "decoder"])
    export_ema.main()
    mixed, donor_state = ve.load_model(tmp_path / "mixed", device="cpu").state_dict(), donor.state_dict()
    for k in ema:
        assert torch.equal(mixed[k], donor_state[k] if k.startswith("decoder.") else ema[k]), k
    assert ve.load_model(tmp_path / "mixed", device="cpu").config.prior_scale == 0.5  # the donor's config
    monkeypatch.setattr(sys, "argv", [*argv, str(tmp_path / "donor"), "--parts", "no_such_part"])
    with pytest.raises(SystemExit, match="no part 'no_such_part'"):
        export_ema.main()


def test_sr_estimators_start_as_the_denoising_one_and_train_alone(trained_dir, train_data, tmp_path):
    grown = VAEEnhancer(replace(PRESETS["tiny"], sr_estimators=True))
    copied, total = warm_start(grown, str(trained_dir))
    assert copied == total  # the donor has no SR estimators: they are seeded from its denoising one
    start = grown.state_dict()
    sr_keys = [k for k in start if k.startswith("sr_estimators.")]
    assert {k.split(".")[1] for k in sr_keys} == {"2", "4"}
    assert all(torch.equal(start[k], start["noise_estimator." + k.split(".", 2)[2]]) for k in sr_keys)
    # An estimator leg on x2 and x4 alone trains those two and leaves the rest, the denoising estimator included.
    out = tmp_path / "sr_est"
    shape = ["--shape", '{"noise_estimator": true, "sr_estimators": true}', "--scales", "2,4"]
    args = ["train", "--data", str(train_data), "--out", str(out), "--steps", "4", "--init", str(trained_dir)]
    assert main([*args, "--estimator-only", *TRAIN_ARGS, *shape]) == 0
    after = ve.load_model(out).state_dict()
    changed = {k for k in start if not torch.equal(start[k], after[k])}
    assert {k.split(".")[1] for k in changed} == {"2", "4"} and changed <= set(sr_keys)
    # A later source without SR estimators (e.g. a newer VAE) does not overwrite those an earlier one gave.
    release = VAEEnhancer(replace(PRESETS["tiny"], sr_estimators=True))
    warm_start(release, f"{out},{trained_dir}")
    assert all(torch.equal(release.state_dict()[k], after[k]) for k in sr_keys)
    row = _log_rows(out)[-1]
    assert float(row["val_level_x2"]) >= 0 and float(row["val_level_x4"]) >= 0


def test_time_limit_ends_the_leg_with_a_checkpoint(train_data, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["train", "--data", str(train_data), "--out", str(out), "--steps", "1000", "--time-limit", "0.0001"]
    assert main([*args, *TRAIN_ARGS]) == 0
    step = _checkpoint(out)["step"]
    assert 1 <= step < 1000
    assert f"leg ended at step {step} of 1000" in capsys.readouterr().out


def test_resume_refuses_another_shape(trained_dir, train_data, tmp_path, capsys):
    out = tmp_path / "other"
    shutil.copytree(trained_dir, out)
    args = ["train", "--data", str(train_data), "--out", str(out), "--steps", "6", "--resume"]
    code = main([*args, *TRAIN_ARGS, "--shape", '{"latent_stride": 8}'])
    assert code == 2
    assert "same --preset" in capsys.readouterr().err


def test_torchrun_two_cpu_processes(train_data, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone", "-m", "vae_enhance",
           "train", "--data", str(train_data), "--out", str(out), "--steps", "4", *TRAIN_ARGS]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (out / "model.safetensors").is_file()
    ve.load_model(out, device="cpu")


def test_list_images_is_recursive_sorted_and_filtered(make_folder):
    root = make_folder("data", count=2)
    nested = make_folder("data/sub/deeper", count=1)
    (root / "notes.txt").write_text("not an image")
    found = list_images(root)
    assert found == sorted(found) and len(found) == 3
    assert nested / "img0.png" in found


def test_list_images_errors(tmp_path):
    with pytest.raises(ValueError, match="no such folder"):
        list_images(tmp_path / "missing")
    with pytest.raises(ValueError, match="no images"):
        list_images(tmp_path)


def test_split_is_deterministic_and_disjoint(make_folder):
    paths = list_images(make_folder(count=6))
    train, val = split(paths, 2, seed=3)
    assert (train, val) == split(paths, 2, seed=3)
    assert len(val) == 2 and sorted(train + val) == paths
    assert len(split(paths, 100)[0]) == 1  # always keeps one image to train on
    with pytest.raises(ValueError, match="at least 2"):
        split(paths[:1], 1)


@pytest.mark.parametrize("shape", [(10, 12), (10, 12, 4)])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_load_rgb8(tmp_path, shape, dtype):
    img = np.random.default_rng(0).integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)
    ve.write_image(tmp_path / "x.png", img)
    t = load_rgb8(tmp_path / "x.png")
    assert t.dtype == torch.uint8 and t.shape == (3, 10, 12)


def test_load_images_skips_unreadable_and_small(make_folder):
    root = make_folder(count=2, size=(40, 40))
    (root / "broken.png").write_bytes(b"not a png")
    ve.write_image(root / "small.png", np.zeros((20, 40, 3), np.uint8))
    images = load_images(list_images(root), 32, torch.device("cpu"))
    assert [im.shape for im in images] == [(3, 40, 40)] * 2
    with pytest.raises(ValueError, match="--patch"):
        load_images(list_images(root), 64, torch.device("cpu"))


def test_crop_sampler_is_seeded(make_folder):
    images = load_images(list_images(make_folder(count=2, size=(40, 50))), 32, torch.device("cpu"))

    def crops(seed):
        return CropSampler(images, 32, torch.Generator().manual_seed(seed)).sample(4)

    a = crops(0)
    assert a.shape == (4, 3, 32, 32) and a.dtype == torch.float32
    assert a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, crops(0)) and not torch.equal(a, crops(1))


def test_crop_sampler_larger_crops_come_from_images_large_enough(make_folder, tmp_path):
    root = make_folder(count=2, size=(40, 50))
    ve.write_image(root / "big.png", np.full((80, 96, 3), 200, np.uint8))
    images = load_images(list_images(root), 32, torch.device("cpu"))
    sampler = CropSampler(images, 32, torch.Generator().manual_seed(0))
    big = sampler.sample(6, 64)
    assert big.shape == (6, 3, 64, 64)
    assert torch.all(big == 200 / 255)  # only the 80x96 image holds a 64 px crop
    assert sampler.sample(3).shape == (3, 3, 32, 32)  # the default side is still --patch
    with pytest.raises(ValueError, match="--sr-lq-patch"):
        sampler.sample(1, 128)


def test_sr_lq_patch_trains_on_larger_sr_crops(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(3):
        ve.write_image(data / f"{i}.png", photo(np.random.default_rng(i), 72, 72))
    seen = []
    real_sample = CropSampler.sample
    monkeypatch.setattr(CropSampler, "sample", lambda self, *a: seen.append(real_sample(self, *a).shape[-1]) or
                        real_sample(self, *a))  # fmt: skip
    args = ["train", "--data", str(data), "--out", str(tmp_path / "out"), "--steps", "4", *TRAIN_ARGS]
    assert main([*args, "--scales", "1,2", "--sr-lq-patch", "24"]) == 0
    assert seen[:4] == [32, 48, 32, 48]  # denoising crops of --patch, x2 crops of 2 x 24


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"patch": 48}, "--patch"),
        ({"preset": "huge"}, "--preset"),
        ({"steps": 0}, "--steps"),
        ({"scales": (3,)}, "--scales"),
        ({"shape": {"depth": 3}}, "--shape"),
        ({"shape": {"latent_stride": 2}}, "latent_stride"),
        ({"camera_fraction": 2.0}, "camera_fraction"),
        ({"best_of": -1}, "--best-of"),
        ({"stop_at": -1}, "--stop-at"),
        ({"sr_lq_patch": 20}, "--sr-lq-patch"),
        ({"over_tell": 1.5}, "--over-tell"),
        ({"over_tell_max": 0.5}, "--over-tell"),
        ({"zoom_max": 0.5}, "--zoom-max"),
        ({"zoom_fraction": 1.5}, "--zoom-fraction"),
        ({"reading_weight": -1.0, "estimator_only": True}, "--reading-weight"),
        ({"reading_weight": 1.0}, "--reading-weight"),
        ({"smooth_fraction": 1.5}, "--smooth-fraction"),
        (
            {"smooth_fraction": 0.5, "luma_reader": True, "scales": (1,)},
            "--smooth-fraction",
        ),  # the VAE's own run: its estimator learns positions only
    ],
)
def test_train_config_validation(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(data="d", out="o", **changes)


def test_train_config_rejects_val_every_zero():
    with pytest.raises(ValueError, match="--val-every"):
        TrainConfig(data="d", out="o", val_every=0)


def test_over_tell_only_raises_levels_within_its_bounds():
    level = torch.linspace(0, 30 / 255, 4000)
    shown = over_tell(level, 0.25, 2.0, torch.Generator().manual_seed(0))
    raised = shown > level
    assert 0.2 < raised.float().mean() < 0.3  # about the fraction asked for, clean inputs included
    assert torch.equal(shown[~raised], level[~raised])  # the rest are told their level
    assert (shown <= 2.0 * level + OVER_TELL_MARGIN + 1e-7).all()
    assert torch.equal(over_tell(level, 0.0, 2.0, torch.Generator().manual_seed(0)), level)


def test_estimator_loss_reading_term_lifts_a_low_quantile():
    """Positions spread evenly around the level: each is right on the median, so the positions' loss is
    the same when they all shift up a little; the reader's 0.2 quantile reads low, and only the reading
    term asks the positions to rise."""

    class Spread(torch.nn.Module):
        pool = LumaReader.pool
        QUANTILE = LumaReader.QUANTILE

        def __init__(self):
            super().__init__()
            self.shift = torch.nn.Parameter(torch.zeros(()))

        def log_levels(self, lq):
            return torch.log(torch.tensor(255 * 0.02 + 0.5)) + torch.linspace(-0.5, 0.5, 101)[None] + self.shift

    lq, level = torch.zeros(1, 3, 8, 8), torch.tensor([0.02])
    est = Spread()
    plain = estimator_loss(est, lq, level)
    with_reading = estimator_loss(est, lq, level, reading_weight=1.0)
    assert with_reading.item() == pytest.approx(plain.item() + 0.3, abs=1e-4)  # the 0.2 quantile: 0.3 below
    with_reading.backward()
    assert est.shift.grad.item() < -0.5  # the reading term pulls the positions up


def test_smooth_fraction_zooms_the_denoising_crops(train_data, tmp_path, monkeypatch):
    """--smooth-fraction 1: every denoising crop is its centre enlarged, as smooth as a camera frame."""
    seen = []

    def record(hq, *args):
        seen.append(hq.clone())
        return real(hq, *args)

    real = train_module.degrade
    monkeypatch.setattr(train_module, "degrade", record)
    for fraction in (0.0, 1.0):
        cfg = TrainConfig(data=str(train_data), out=str(tmp_path / str(fraction)), preset="tiny", batch=4, patch=32,
                          device="cpu", smooth_fraction=fraction, zoom_max=6.0)  # fmt: skip
        Run(cfg, None).train_step()  # step 0: a denoising step (scales 1, 1, 2, 4)
    plain, smooth = seen

    def fine(x):  # the energy of neighbouring-pixel differences
        return (x[..., 1:] - x[..., :-1]).square().mean(dim=(1, 2, 3))

    assert plain.shape == smooth.shape and (fine(smooth) < fine(plain)).all()
