"""The options of the commands that run the model: ``negtemp``, ``sweep`` and ``verify``.

``negtemp`` and ``sweep`` are made of parts, a ``SamplerConfig`` and a ``GenerationOptions``
(``anomtok.generation``), imported (with torch) when an object is built."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from ..inputs import check_int
from .build import check_bools, check_part, check_paths, set_field

if TYPE_CHECKING:  # pragma: no cover
    from ..generation.options import GenerationOptions
    from ..generation.sampler import SamplerConfig

__all__ = ["NegtempOptions", "SweepOptions", "VerifyOptions", "NEGTEMP_TEMPERATURE"]

NEGTEMP_TEMPERATURE = -0.001  # negtemp's default: the least likely token at every step


def _negtemp_sampler() -> SamplerConfig:
    from ..generation.sampler import SamplerConfig

    return SamplerConfig(temperature=NEGTEMP_TEMPERATURE)


def _generation_options(**kw: Any) -> GenerationOptions:
    from ..generation.options import GenerationOptions

    return GenerationOptions(**kw)


def _sweep_temperatures() -> tuple[float, ...]:
    from ..generation.sweep_run import SWEEP_TEMPERATURES

    return tuple(SWEEP_TEMPERATURES)


@dataclass(frozen=True)
class NegtempOptions:
    """``anomtok negtemp``: how a token is chosen (``sampler``, default ``T = -0.001``, no filter),
    how generation runs (``generation``: tokens, seed, batch, timeout, device, dtype) and which
    prompt files to read (default: the packaged English and Japanese prompts)."""

    sampler: SamplerConfig = field(default_factory=lambda: _negtemp_sampler())
    generation: GenerationOptions = field(default_factory=lambda: _generation_options(max_new_tokens=32))
    prompt_files: tuple[str, ...] = ()

    @staticmethod
    def parts() -> dict[str, type]:
        from ..generation.options import GenerationOptions
        from ..generation.sampler import SamplerConfig

        return {"sampler": SamplerConfig, "generation": GenerationOptions}

    def __post_init__(self) -> None:
        from ..generation.options import GenerationOptions
        from ..generation.sampler import SamplerConfig

        check_part(self, "sampler", SamplerConfig, _negtemp_sampler)
        check_part(self, "generation", GenerationOptions, lambda: _generation_options(max_new_tokens=32))
        set_field(self, "prompt_files", check_paths(self.prompt_files, "prompt_files"))

    def feature_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``anomtok.generation.negtemp`` these options set."""
        g = self.generation
        return {
            "config": self.sampler,
            "max_new_tokens": g.max_new_tokens,
            "seed": g.seed,
            "batch_size": g.batch_size,
            "stop_at_eos": g.stop_at_eos,
            "timeout_s": g.timeout_s,
            "device": g.device,
            "dtype": g.dtype,
            "device_map": g.device_map,
        }


@dataclass(frozen=True)
class SweepOptions:
    """``anomtok sweep``: the temperatures (each checked as a ``SamplerConfig``), how generation
    runs (``generation``, default 32 tokens; ``timeout_s`` is per temperature), the ranking metric
    of the anomaly percentile, the prompt files and ``prompts_per_file`` taken from the start of each (0 = all)."""

    temperatures: tuple[float, ...] = field(default_factory=lambda: _sweep_temperatures())
    generation: GenerationOptions = field(default_factory=lambda: _generation_options(max_new_tokens=32))
    metric: str = "score"
    prompt_files: tuple[str, ...] = ()
    prompts_per_file: int = 4

    @staticmethod
    def parts() -> dict[str, type]:
        from ..generation.options import GenerationOptions

        return {"generation": GenerationOptions}

    def __post_init__(self) -> None:
        from ..generation.options import GenerationOptions, check_metric
        from ..generation.sampler import SamplerConfig
        from ..generation.sweep_run import SWEEP_TEMPERATURES

        temps = SWEEP_TEMPERATURES if self.temperatures is None else self.temperatures
        temps = (temps,) if isinstance(temps, (int, float)) else tuple(temps)
        if not temps:
            raise InputError("no temperatures to sweep")
        set_field(self, "temperatures", tuple(SamplerConfig(temperature=t).temperature for t in temps))
        check_part(self, "generation", GenerationOptions, lambda: _generation_options(max_new_tokens=32))
        if self.generation.stop_at_eos:
            raise InputError("sweep always generates max_new_tokens tokens: stop_at_eos must be False")
        check_metric(self.metric)
        set_field(self, "prompt_files", check_paths(self.prompt_files, "prompt_files"))
        check_int(self.prompts_per_file, "prompts_per_file", 0, hint=" (0 = every prompt of each file)")

    def feature_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``anomtok.generation.sweep`` these options set."""
        g = self.generation
        return {
            "temperatures": list(self.temperatures),
            "max_new_tokens": g.max_new_tokens,
            "seed": g.seed,
            "batch_size": g.batch_size,
            "metric": self.metric,
            "device": g.device,
            "dtype": g.dtype,
            "device_map": g.device_map,
            "timeout_s": g.timeout_s,
        }


@dataclass(frozen=True)
class VerifyOptions:
    """``anomtok verify``: the candidates (the ``top`` tokens of each of ``metrics``, default all,
    among ``kinds``; or exactly ``token_ids``), ``random_sample`` base-rate tokens, the verdict's
    ``threshold`` and how the probabilities are read (see ``anomtok.verify``)."""

    metrics: tuple[str, ...] = ()
    top: int = 5
    random_sample: int = 30
    kinds: tuple[str, ...] = ("normal",)
    token_ids: tuple[int, ...] | None = None
    threshold: float = 0.01
    n_positions: int = 3
    batch_size: int = 32
    settle: bool = False
    seed: int = 0
    device: str = "auto"
    dtype: str = "auto"

    def __post_init__(self) -> None:
        from ..verify import check_settings

        for name in ("metrics", "kinds"):
            value = getattr(self, name)
            set_field(self, name, (value,) if isinstance(value, str) else tuple(value))
        if self.token_ids is not None:
            ids = tuple(self.token_ids)
            if not ids or any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in ids):
                raise InputError(f"token_ids must be token ids (integers >= 0), not {self.token_ids!r}")
            set_field(self, "token_ids", ids)
        check_bools(self, "settle")
        check_settings(
            metrics=self.metrics,
            top=self.top,
            random_sample=self.random_sample,
            kinds=self.kinds,
            threshold=self.threshold,
            n_positions=self.n_positions,
            batch_size=self.batch_size,
            seed=self.seed,
            device=self.device,
            dtype=self.dtype,
        )

    def feature_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``anomtok.verify.verify`` these options set."""
        return {
            "metrics": list(self.metrics) or None,
            "top": self.top,
            "random_sample": self.random_sample,
            "kinds": self.kinds,
            "token_ids": list(self.token_ids) if self.token_ids is not None else None,
            "threshold": self.threshold,
            "n_positions": self.n_positions,
            "batch_size": self.batch_size,
            "settle": self.settle,
            "seed": self.seed,
            "device": self.device,
            "dtype": self.dtype,
        }
