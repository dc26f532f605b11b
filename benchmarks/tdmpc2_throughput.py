"""TD-MPC2 vs TD-MPC2-ERA throughput: agent steps/s of training, side by side, and ERA's cost.

Both algorithms are built through the family's real code (``adapters.tdmpc2``) with the same
settings and seed; each fills its buffer with random-action episodes (``seed_steps``, then the
pretraining burst), and then training episodes (one MPPI plan and one update per agent step) are
timed, alternating between the two algorithms, so background load hits both alike. The ratio
ERA / plain is the ERA overhead inside TD-MPC2: the activation on the prior, the preimage it hands
TD-MPC2's tanh map, and δ's Adam step after every update.

    python benchmarks/tdmpc2_throughput.py [--task dmc:walker-walk] [--model-size 5] [--repeats 3]
        [--episode-length 100] [--device auto] [--tiny]

Defaults: TD-MPC2's 5M model and planner (512 samples, 6 iterations), 100-step episodes (the
time limit changes nothing per step), on CUDA when there is one (``compile`` follows the device,
as in trials). ``--tiny`` runs a toy model in seconds (the CI test). Needs TD-MPC2
(``bash scripts/install_tdmpc2.sh``).
"""

from __future__ import annotations

import argparse
import statistics
import time

ALGOS = ("tdmpc2", "tdmpc2-era")
TINY = dict(model_size=1, mlp_dim=32, enc_dim=32, latent_dim=16, num_samples=16, num_elites=4, num_pi_trajs=2,
            iterations=1, batch_size=16)


def _build(algo: str, args: argparse.Namespace, device):
    from adapters.tdmpc2.agent import build_run
    from adapters.tdmpc2.settings import resolve_settings
    from adapters.trial import TrialSpec

    settings = {**(TINY if args.tiny else {"model_size": args.model_size}),
                "episode_length": args.episode_length, "seed_steps": args.episode_length}
    spec = TrialSpec(algo, args.task, 0, args.episode_length * (args.repeats + 2), settings=settings)
    return build_run(spec, resolve_settings(spec), device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="dmc:walker-walk")
    parser.add_argument("--model-size", type=int, default=5)
    parser.add_argument("--episode-length", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3, help="timed episodes per algorithm")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--tiny", action="store_true", help="a toy model: checks the script in seconds")
    args = parser.parse_args(argv)

    import torch

    from adapters.device import select_device
    from adapters.tdmpc2.training import _episode

    device = select_device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)
    runs, steps = {}, {}
    for algo in ALGOS:  # random episode, then the pretraining burst inside the first training episode
        runs[algo] = _build(algo, args, device)
        steps[algo] = _episode(runs[algo], _episode(runs[algo], 0))
    rates: dict[str, list[float]] = {algo: [] for algo in ALGOS}
    for _ in range(args.repeats):
        for algo in ALGOS:
            if device.type == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
            after = _episode(runs[algo], steps[algo])
            if device.type == "cuda":
                torch.cuda.synchronize()
            rates[algo].append((after - steps[algo]) / (time.perf_counter() - started))
            steps[algo] = after
    size = "toy model" if args.tiny else f"{args.model_size}M model"
    cfg = runs["tdmpc2"].cfg
    print(f"TD-MPC2 training throughput on {args.task} ({size}, {cfg.num_samples} samples x {cfg.iterations} "
          f"iterations, batch {cfg.batch_size}, device {device}, compile {cfg.compile}; "
          f"{args.repeats} alternating episodes of {args.episode_length} agent steps each)")
    print("| algorithm | agent steps/s (median) | per episode |")
    print("| --- | --- | --- |")
    for algo in ALGOS:
        print(f"| {algo} | {statistics.median(rates[algo]):.2f} | {', '.join(f'{r:.2f}' for r in rates[algo])} |")
    ratio = statistics.median(rates["tdmpc2"]) / statistics.median(rates["tdmpc2-era"])
    print(f"ERA overhead: tdmpc2-era takes {ratio:.3f}x the time per agent step of tdmpc2")
    for run in runs.values():
        run.env.close()
        run.eval_env.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
