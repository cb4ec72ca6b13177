"""``--ray ADDRESS --ray-actors N --ray-gpus-per-actor G`` -> the run's executor."""

from __future__ import annotations

import typer

from judgekit.judging.executor import ExecutorChoice


def ray_executor(address: str | None, actors: int, gpus_per_actor: float) -> ExecutorChoice:
    """The local executor without ``--ray``; with it, a Ray actor pool (Ray imported only then)."""
    if address is None:
        if actors != 1 or gpus_per_actor:
            raise typer.BadParameter("needs --ray ADDRESS", param_hint="--ray-actors")
        return "local"
    try:
        from judgekit.judging.ray_executor import RayExecutor, ray_module

        ray_module()
    except ImportError as err:
        raise typer.BadParameter(str(err), param_hint="--ray") from err
    return RayExecutor(address=address, actors=actors, gpus_per_actor=gpus_per_actor)
