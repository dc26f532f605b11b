"""Peak memory and step time of one GRPO micro-batch: TRL's plain GRPO, GRPO-ERA on the full
logits, and GRPO-ERA through the fused LM head (docs/llm.md, "Memory"), side by side.

The model is a Qwen2 built from a config with Qwen2.5's 152,064-token vocabulary (untied head, as
Qwen2.5-Math-7B) and a small backbone, so that the LM head, the part the paths differ in, weighs as
much as it can. Each configuration runs in a fresh subprocess: it builds the model, TRL's trainer
(the same ``GRPOConfig`` for all: loss ``dapo``, no KL, temperature 1) and one fixed batch of
``--completions`` completions of ``--length`` tokens after a ``--prompt``-token prompt, advantages
alternating +1 / -1 (a GRPO group's signs). A warm-up step, then ``--repeats`` micro-steps
(``compute_loss`` + ``backward``, what a training micro-step runs; generation is the same for
every path and left out), each timed: on CUDA by wall clock, on the CPU by the process's CPU time
on ``--threads`` threads (1 by default: on a shared machine the wall clock measures the
neighbours' load more than the step; the wall times are printed too).

Peak memory is what a micro-step adds above the model, batch and optimizer-free trainer left
after the warm-up (activations, logits, kernel tiles, parameter gradients):

- CPU: the process's peak resident set (``VmHWM``, reset through ``/proc/self/clear_refs`` after
  the warm-up) minus its resident set then (``VmRSS``), with glibc's mmap threshold fixed at
  128 KiB so that freed tensors leave the resident set;
- CUDA: ``torch.cuda.max_memory_allocated()`` minus ``memory_allocated()`` at the same point.

The ERA rows give ERA's settings (k 2, band [0.45, 3.0]); a random model's responses are near
uniform (entropy about 11.9 nats), so every positive-advantage token is scaled by 1/k and the
fused path pays its extra entropy pass on half the rows. A configuration whose process is
predicted to need more than ``--max-gib`` (its memory before the step, plus its step peak per
completion token at the smaller lengths times the completion tokens; for a full-logits row at
least one fp32 copy of its ``B x T x V`` logits) is skipped, and says so.

    python benchmarks/llm_memory.py [--lengths 1024,2048] [--completions 2] [--repeats 3]
    python benchmarks/llm_memory.py --device cuda --qwen-7b --gradient-checkpointing --completions 8 \
        --lengths 3072,8192 --max-gib 130     # suites/llm-qwen-math.yaml's micro-batch on one H200
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

PATHS = {  # name -> (trainer, ERA settings)
    "grpo": ("grpo", {}),
    "era-logits": ("era", {"era_path": "logits"}),
    "era-fused": ("era", {"era_path": "fused"}),
    "era-authors-logits": ("era", {"era_path": "logits", "authors_code": True}),
    "era-authors-fused": ("era", {"era_path": "fused", "authors_code": True}),
}
#: Qwen2.5-(Math-)7B's shape, from its published config (no weights: random, built here)
QWEN_7B = dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
               num_key_value_heads=4)
_ROOT = Path(__file__).resolve().parents[1]
_OFFLINE = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY")


# ------------------------------------------------------------------------------------ the child
def _proc_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _child(args: argparse.Namespace) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, Qwen2Config
    from trl import GRPOConfig, GRPOTrainer

    from adapters.llm.toy import build_tokenizer
    from adapters.llm.trainer import ERAGRPOTrainer

    cuda = args.device == "cuda"
    if not cuda:
        torch.set_num_threads(args.threads)
    kind, era = PATHS[args.child]
    torch.manual_seed(0)
    shape = QWEN_7B if args.qwen_7b else dict(
        hidden_size=args.hidden, intermediate_size=2 * args.hidden, num_hidden_layers=2,
        num_attention_heads=max(1, args.hidden // 64), num_key_value_heads=max(1, args.hidden // 256),
    )
    shape = dict(shape, **({"num_hidden_layers": args.layers} if args.layers else {}))
    config = Qwen2Config(vocab_size=args.vocab, tie_word_embeddings=False,
                         max_position_embeddings=args.prompt + args.length + 1, **shape)
    with torch.device("cuda" if cuda else "cpu"):  # a 7B model is built where it runs, in its dtype
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16 if cuda else torch.float32)
    grpo_args = GRPOConfig(
        output_dir=str(args.out / "trainer"), use_cpu=not cuda, bf16=cuda, gradient_checkpointing=args.gradient_checkpointing,
        per_device_train_batch_size=args.completions, num_generations=args.completions,
        max_completion_length=args.length, learning_rate=1e-6, max_steps=1, report_to="none", save_strategy="no",
        disable_tqdm=True, temperature=1.0, beta=0.0, loss_type="dapo", seed=0,
    )
    data = Dataset.from_dict({"prompt": ["1+2="] * args.completions, "answer": ["3"] * args.completions})
    common = dict(model=model, reward_funcs=lambda completions, **_: [0.0] * len(completions), args=grpo_args,
                  train_dataset=data, processing_class=build_tokenizer())
    if kind == "grpo":
        trainer = GRPOTrainer(**common)
    else:
        trainer = ERAGRPOTrainer(era_k=2.0, omega_low=0.45, omega_high=3.0, **era, **common)
        if trainer.era_path != era["era_path"]:
            raise RuntimeError(f"{args.child}: the trainer fell back to era_path={trainer.era_path}")
    trainer.current_gradient_accumulation_steps = 1
    if args.gradient_checkpointing:  # what Trainer.train() does first
        trainer.model.activation_checkpointing_enable(
            activation_checkpointing_kwargs=grpo_args.activation_checkpointing_kwargs or None)
    trainer.model.train()
    device = trainer.model.device
    generator = torch.Generator().manual_seed(1)
    batch = {
        "prompt_ids": torch.randint(0, args.vocab, (args.completions, args.prompt), generator=generator),
        "prompt_mask": torch.ones(args.completions, args.prompt, dtype=torch.long),
        "completion_ids": torch.randint(0, args.vocab, (args.completions, args.length), generator=generator),
        "completion_mask": torch.ones(args.completions, args.length, dtype=torch.long),
        "advantages": torch.tensor([1.0 if i % 2 == 0 else -1.0 for i in range(args.completions)]),
    }
    batch["num_items_in_batch"] = batch["completion_mask"].sum()
    batch = {key: value.to(device) for key, value in batch.items()}

    def step() -> tuple[float, float]:
        """(wall seconds, CPU seconds of this process) of one micro-step."""
        trainer.model.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        wall, cpu = time.perf_counter(), time.process_time()
        trainer.compute_loss(trainer.model, dict(batch)).backward()
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - wall, time.process_time() - cpu

    step()  # warm-up: lazy initialisation, kernels, allocator
    trainer.model.zero_grad(set_to_none=True)
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident set
        base = _proc_kib("VmRSS") * 1024
    measured = [step() for _ in range(args.repeats)]
    times = [wall if cuda else cpu for wall, cpu in measured]
    peak = (torch.cuda.max_memory_allocated() if cuda else _proc_kib("VmHWM") * 1024) - base
    metrics = trainer._metrics["train"]
    return {
        "path": args.child, "length": args.length, "completions": args.completions, "peak_bytes": peak,
        "base_bytes": base, "step_s": statistics.median(times), "times": times,
        "wall_s": [wall for wall, _ in measured],
        "scaled": (metrics["era/frac_scaled_up"][-1] + metrics["era/frac_scaled_down"][-1]) if kind == "era" else None,
        "threads": torch.get_num_threads(),
    }


# ------------------------------------------------------------------------------------ the parent
def _run_child(args: argparse.Namespace, path: str, length: int) -> dict:
    """One configuration in a fresh process: its result, or ``{"skipped": why}`` if it failed."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", MALLOC_TRIM_THRESHOLD_="131072",
               PYTHONPATH=os.pathsep.join(filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")])))
    env.update({name: "1" for name in _OFFLINE})
    command = [sys.executable, __file__, "--child", path, "--length", str(length)] + _shared_flags(args)
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]  # e.g. CUDA out of memory
    return {"skipped": f"failed (exit {done.returncode}): {tail[:120]}"}


def _shared_flags(args: argparse.Namespace) -> list[str]:
    flags = ["--device", args.device, "--vocab", str(args.vocab), "--hidden", str(args.hidden),
             "--completions", str(args.completions), "--prompt", str(args.prompt), "--repeats", str(args.repeats),
             "--threads", str(args.threads), "--out", str(args.out)]
    flags += ["--layers", str(args.layers)] if args.layers else []
    flags += ["--qwen-7b"] if args.qwen_7b else []
    return flags + (["--gradient-checkpointing"] if args.gradient_checkpointing else [])


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--lengths", default="1024,2048", help="completion lengths, comma-separated")
    parser.add_argument("--completions", type=int, default=2, help="completions per micro-batch")
    parser.add_argument("--prompt", type=int, default=128, help="prompt tokens")
    parser.add_argument("--vocab", type=int, default=152064, help="Qwen2.5's 152,064")
    parser.add_argument("--hidden", type=int, default=256, help="hidden size of the small backbone")
    parser.add_argument("--layers", type=int, default=None, help="decoder layers (default 2; --qwen-7b: 28)")
    parser.add_argument("--qwen-7b", action="store_true", help="Qwen2.5-7B's shape (a GPU run)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (CPU runs only)")
    parser.add_argument("--paths", default="grpo,era-logits,era-fused", help=f"of {', '.join(PATHS)}")
    parser.add_argument("--max-gib", type=float, default=8.0,
                        help="skip a configuration whose process is predicted to need more (GiB)")
    parser.add_argument("--gradient-checkpointing", action="store_true", help="as suites/llm-qwen-math.yaml")
    parser.add_argument("--out", type=Path, default=Path("/tmp/era-llm-memory"))
    parser.add_argument("--child", choices=list(PATHS), help=argparse.SUPPRESS)
    parser.add_argument("--length", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(_child(args)), flush=True)
        return
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    unknown = [p for p in paths if p not in PATHS]
    if unknown:
        parser.error(f"--paths: unknown {', '.join(unknown)}; choose from {', '.join(PATHS)}")
    lengths = sorted(int(n) for n in args.lengths.split(","))
    clock = "wall clock" if args.device == "cuda" else f"CPU time on {args.threads} thread(s)"
    shape = "Qwen2.5-7B's shape" if args.qwen_7b else f"hidden {args.hidden}"
    print(f"# {args.device}: Qwen2 config, vocab {args.vocab}, {shape}, {args.layers or (28 if args.qwen_7b else 2)} "
          f"layers, {'bf16' if args.device == 'cuda' else 'fp32'}"
          f"{', gradient checkpointing' if args.gradient_checkpointing else ''}; "
          f"{args.completions} completions x L tokens after a {args.prompt}-token prompt; step = median "
          f"{clock} of {args.repeats} micro-steps (compute_loss + backward)", flush=True)
    rows: dict[tuple[str, int], dict] = {}
    per_token: dict[str, float] = {}  # the largest peak per completion token so far, for the prediction
    base: dict[str, float] = {}  # the resident set before the step, added to the prediction
    for length in lengths:
        tokens = args.completions * length  # completion tokens: what the logits grow with
        for path in paths:
            predicted = base.get(path, 0.0) + per_token.get(path, 0.0) * tokens  # the whole process
            if PATHS[path][1].get("era_path") == "logits":  # before any measurement: one fp32 copy of the logits
                predicted = max(predicted, max(base.values(), default=0.0) + 4.0 * tokens * args.vocab)
            if predicted > args.max_gib * 2**30:
                rows[(path, length)] = {"skipped": f"skipped: predicted {_gib(predicted)} GiB in all > --max-gib "
                                                   f"{args.max_gib:g}"}
                print(f"{path:>20} L={length}: {rows[(path, length)]['skipped']}", flush=True)
                continue
            result = _run_child(args, path, length)
            rows[(path, length)] = result
            if "skipped" in result:
                print(f"{path:>20} L={length}: {result['skipped']}", flush=True)
                continue
            per_token[path] = max(per_token.get(path, 0.0), result["peak_bytes"] / tokens)
            base[path] = result["base_bytes"]
            print(f"{path:>20} L={length}: peak {_gib(result['peak_bytes'])} GiB, step {result['step_s']:.2f} s "
                  f"(steps {', '.join(f'{t:.2f}' for t in result['times'])}; wall "
                  f"{', '.join(f'{t:.2f}' for t in result['wall_s'])}; base {_gib(result['base_bytes'])} GiB)",
                  flush=True)
    print()
    print("| completion tokens | path | peak GiB | x grpo | step s | x grpo | tokens ERA scaled |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for length in lengths:
        plain = rows.get(("grpo", length), {})
        for path in paths:
            row = rows[(path, length)]
            if "skipped" in row:
                print(f"| {args.completions} x {length} | {path} | {row['skipped']} | | | | |")
                continue
            ratio = (lambda key: f"{row[key] / plain[key]:.2f}" if plain.get(key) else "")
            scaled = "" if row["scaled"] is None else f"{100 * row['scaled']:.0f}%"
            print(f"| {args.completions} x {length} | {path} | {_gib(row['peak_bytes'])} | {ratio('peak_bytes')} | "
                  f"{row['step_s']:.2f} | {ratio('step_s')} | {scaled} |")


if __name__ == "__main__":
    main()
