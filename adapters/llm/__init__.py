"""The LLM reinforcement-learning family: GRPO with and without token-level ERA, run by Hugging
Face TRL's ``GRPOTrainer`` (docs/era.md, section 3; optional extra ``[llm]``).

Algorithms: ``grpo`` (TRL's ``GRPOTrainer`` unchanged) and ``grpo-era``
(:class:`adapters.llm.trainer.ERAGRPOTrainer`, which changes only how per-token log-probs and
advantages are computed). Tasks:

- ``llm:arith`` (single-digit addition), ``llm:tagged-sum`` (the sum after a free tag letter the
  reward ignores: GRPO's entropy loss there is lost diversity) and ``llm:decompose`` (write ``s``
  as a sum of two digits, a free choice coupled to the reward) on a tiny Llama built from a
  config, first taught by a deterministic supervised warm-up (:mod:`adapters.llm.toy`); minutes on
  a laptop CPU.
- ``llm:hf:<dataset>``: a hub model (setting ``model``) trained on a hub dataset of math problems
  and evaluated on hub evaluation sets (:mod:`adapters.llm.hub`); for GPU clusters.

The budget counts GRPO steps (optimizer steps). Every evaluation samples ``eval_samples``
completions per evaluation prompt and reports ``score`` = their mean accuracy in %, ``entropy`` =
the mean response entropy (docs/era.md, section 3: mean of the top 20% token entropies on the unmodified
logits), ``pass@k``, ``greedy_accuracy``, and what happened in training since the last evaluation
(``train_reward``, TRL's ``train_token_entropy``, and for ``grpo-era`` ``frac_scaled_up`` /
``frac_scaled_down``, the share of completion tokens whose logits ERA multiplied by k or 1/k,
``train_response_entropy`` and ``entropy_floor`` = ``omega_low``). ``authors_code: true``
reproduces the authors' code (integer-truncated advantages in the logit rule, top-20 log-probs).
A record at step 0 evaluates the model before GRPO (after the warm-up).

Checkpoints: the warm-up model (step 0), then TRL/Hugging Face's own trainer checkpoint (weights,
optimizer, scheduler, RNG, trainer state), hard-linked into the trial checkpoint; a resumed trial
continues with ``trainer.train(resume_from_checkpoint=...)``, the library's resume, and never
redoes the warm-up.
"""

from __future__ import annotations

from collections.abc import Iterator

from adapters.llm.settings import DEFAULTS, TASKS, LLMSettings, parse_task, resolve_settings, validate
from adapters.trial import EvalRecord, TrialCheckpoint, TrialSpec

__all__ = ["DEFAULTS", "TASKS", "LLMSettings", "resolve_settings", "parse_task", "validate", "run"]


def run(spec: TrialSpec, checkpoint: TrialCheckpoint) -> Iterator[EvalRecord]:
    """Train and evaluate (imports torch, transformers and TRL only now)."""
    from adapters.llm.training import run as _run

    return _run(spec, checkpoint)
