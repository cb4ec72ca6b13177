"""``--ray ADDRESS --ray-actors N --ray-gpus-per-actor G``, declared once, -> the run's executor."""

from __future__ import annotations

from typing import Annotated

import typer

from judgekit.judging.executor import ExecutorChoice

RayAddress = Annotated[
    str | None,
    typer.Option(
        "--ray",
        metavar="ADDRESS",
        help="Run the requests on Ray actors: 'local' (a new in-process cluster), 'auto' "
        "(the running cluster, $RAY_ADDRESS) or ray://HEAD:10001. Needs Ray Data (the ray extra).",
    ),
]
RayActors = Annotated[
    int, typer.Option(min=1, help="With --ray: actors, each holding one judge engine.")
]
RayGpus = Annotated[
    float, typer.Option(min=0, help="With --ray: GPUs per actor (tensor parallel inside).")
]


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
