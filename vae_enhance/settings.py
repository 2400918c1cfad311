"""Server settings for a deployment of the app: threads, concurrent jobs and which models visitors may pick.

Each setting is an environment variable; the app also reads them from Streamlit secrets (Community Cloud's
*Secrets*, or .streamlit/secrets.toml), where a list of models can be a TOML list. A bad value raises a
ValueError that names the setting and what it accepts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from vae_enhance.hub import MODEL_ENV

THREADS_ENV = "VAE_ENHANCE_THREADS"
MAX_JOBS_ENV = "VAE_ENHANCE_MAX_JOBS"
MODELS_ENV = "VAE_ENHANCE_MODELS"
ANY_MODEL_ENV = "VAE_ENHANCE_ALLOW_ANY_MODEL"
# Six sessions each denoising a 12 MP photo (scripts/load_test.py, 2 cores): with 1, 2 and 3 jobs at once the
# server peaked at 1770, 2010-2210 and 2631 MB. Two stay inside the 2.7 GB a Community Cloud app may get;
# more at once would not finish sooner on its small CPU share anyway.
DEFAULT_MAX_JOBS = 2
CGROUP = Path("/sys/fs/cgroup")
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"", "0", "false", "no", "off"}


@dataclass(frozen=True)
class Settings:
    """What the operator chose; visitors of a deployment change none of it.

    threads:         torch threads for inference (None: sized from the container's CPU quota).
    max_jobs:        enhance/variation jobs running at once in the server; more wait in a queue.
    models:          model sources visitors may pick besides the bundled weights (repo@sha or folder).
    default_model:   the model selected at first ($VAE_ENHANCE_MODEL); '' is the bundled weights.
    allow_any_model: visitors may also type any Hub repo id or server folder (for a local, trusted setup).
    """

    threads: int | None = None
    max_jobs: int = DEFAULT_MAX_JOBS
    models: tuple[str, ...] = ()
    default_model: str = ""
    allow_any_model: bool = False

    @classmethod
    def read(cls, *sources: Mapping) -> Settings:
        """Settings from the first of `sources` (e.g. os.environ, then the Streamlit secrets) that has each key."""

        def get(name: str, default=None):
            return next((s[name] for s in sources if s.get(name) not in (None, "")), default)

        threads = get(THREADS_ENV)
        return cls(
            threads=None if threads is None else _whole(THREADS_ENV, threads),
            max_jobs=_whole(MAX_JOBS_ENV, get(MAX_JOBS_ENV, DEFAULT_MAX_JOBS)),
            models=_model_list(get(MODELS_ENV, ())),
            default_model=str(get(MODEL_ENV, "")).strip(),
            allow_any_model=_flag(ANY_MODEL_ENV, get(ANY_MODEL_ENV, False)),
        )

    def model_choices(self) -> list[str]:
        """The sources a visitor may pick, default first; '' stands for the bundled weights."""
        choices = [self.default_model, "", *self.models]
        return list(dict.fromkeys(choices))  # without repeats, in order


def _whole(name: str, value) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        number = 0
    if number < 1:
        raise ValueError(f"{name} must be a whole number of at least 1, got {value!r}")
    return number


def _flag(name: str, value) -> bool:
    text = str(value).strip().lower()
    if text not in _TRUE | _FALSE:
        raise ValueError(f"{name} must be true or false (1/0, yes/no), got {value!r}")
    return text in _TRUE


def _model_list(value) -> tuple[str, ...]:
    """A TOML list, or one string with the sources separated by commas, spaces or new lines."""
    items = value.replace(",", " ").split() if isinstance(value, str) else list(value)
    return tuple(str(item).strip() for item in items if str(item).strip())


def cpu_quota(root: Path = CGROUP) -> float | None:
    """CPUs this container may use by its cgroup quota (v2 cpu.max, else v1 cfs); None when unlimited."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    for folder in (root / "cpu", root / "cpu,cpuacct"):
        try:
            quota = int((folder / "cpu.cfs_quota_us").read_text())
            period = int((folder / "cpu.cfs_period_us").read_text())
        except (OSError, ValueError):
            continue
        return None if quota <= 0 or period <= 0 else quota / period
    return None


def thread_count(setting: int | None = None, available: int | None = None, root: Path = CGROUP) -> int:
    """Threads for torch: the setting if given, else torch's own count capped by the CPU quota (at least 1).

    torch sizes its pool by the cores it sees (or OMP_NUM_THREADS), not by the container's quota: an app
    allowed one CPU on a 16-core host would run 16 threads that mostly wait for each other.
    available: torch's count (default: torch.get_num_threads()).
    """
    if setting is not None:
        return setting
    available = torch.get_num_threads() if available is None else available
    quota = cpu_quota(root)
    return max(1, min(available, math.ceil(quota))) if quota else available


def apply_threads(setting: int | None = None) -> int:
    """Size torch's intra-op thread pool by thread_count(); returns the count."""
    count = thread_count(setting)
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
    return count
