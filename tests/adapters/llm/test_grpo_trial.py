"""The LLM family (adapters.llm): settings and task validation, pass@k, hub answer checking, and
real GRPO / GRPO-ERA trials on the toy task under TRL, resumed from their checkpoints."""

from __future__ import annotations

import itertools
import os

import pytest

for _name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
    os.environ[_name] = "1"  # before TRL is imported: no network, no telemetry

from adapters import llm  # noqa: E402
from adapters.errors import ConfigError, UnknownNameError  # noqa: E402
from adapters.llm.evaluation import pass_at_k, pass_ks  # noqa: E402
from adapters.llm.hub import EVAL_SETS, DatasetSpec, dataset_spec, extract_answer, math_reward  # noqa: E402
from adapters.llm.settings import HubTaskId  # noqa: E402
from adapters.registry import budget_unit, family_for  # noqa: E402
from adapters.trial import TrialSpec, run_trial  # noqa: E402

try:
    import trl  # noqa: F401

    HAVE_TRL = True
except ImportError:
    HAVE_TRL = False
needs_trl = pytest.mark.skipif(not HAVE_TRL, reason="TRL is not installed: pip install -e '.[llm]'")


def spec(algo="grpo-era", task="llm:arith", budget=4, **settings) -> TrialSpec:
    return TrialSpec(algo=algo, task=task, seed=0, budget=budget, eval_every=2, settings=settings, device="cpu")


# ------------------------------------------------------------------------------ registry, settings
def test_registry_routes_both_algorithms_here():
    assert family_for("grpo") is llm and family_for("grpo-era") is llm
    assert budget_unit("grpo-era") == "steps"


def test_era_defaults_are_the_papers():
    settings = llm.resolve_settings(spec())
    assert (settings.era_k, settings.omega_low, settings.omega_high) == (2.0, 0.45, 3.0)
    assert settings.scale_advantages is True and settings.authors_code is False


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (dict(algo="grpo", omega_low=0.5), "unknown setting.*omega_low.*allowed settings"),
        (dict(era_k=0), "era_k=0 is invalid"),
        (dict(omega_low=3.5), "omega_low=3.5 > omega_high=3.0"),
        (dict(num_generations=1), "num_generations=1 is invalid"),
        (dict(warmup_steps=-1), "warmup_steps=-1 is invalid"),
        (dict(lr_scheduler="step"), "lr_scheduler='step' is invalid"),
        (dict(trl={"learning_rate": 1.0}), "learning_rate is set by the adapter"),
        (dict(model="Qwen/Qwen2.5-Math-7B"), "toy model only: set model: tiny"),
        (dict(task="llm:hf:some/data"), "needs a hub model"),
        (dict(budget=0), "at least 1"),
    ],
)
def test_validate_refuses_bad_input_with_the_fix(bad, match):
    bad = dict(bad)
    kwargs = {k: bad.pop(k) for k in ("algo", "task", "budget") if k in bad}
    with pytest.raises(ConfigError, match=match):
        llm.validate(spec(**kwargs, **bad))


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(UnknownNameError, match="llm:arith, llm:decompose, llm:hf:<dataset>, llm:tagged-sum"):
        llm.validate(spec(task="llm:gsm8k"))
    assert llm.parse_task("llm:hf:BytedTsinghua-SIA/DAPO-Math-17k") == HubTaskId("BytedTsinghua-SIA/DAPO-Math-17k")


@needs_trl
def test_validate_checks_trl_fields_and_refuses_vllm_with_era():
    with pytest.raises(ConfigError, match="not a GRPOConfig field"):
        llm.validate(spec(trl={"no_such_field": 1}))
    with pytest.raises(ConfigError, match="use_vllm"):
        llm.validate(spec(trl={"use_vllm": True}))
    llm.validate(spec(trl={"max_grad_norm": 0.5}))
    llm.validate(spec(task="llm:hf:BytedTsinghua-SIA/DAPO-Math-17k", model="Qwen/Qwen2.5-Math-7B",
                      eval_datasets={"aime24": "aime24", "mine": {"path": "me/set", "answer_column": "gold"}}))


# ------------------------------------------------------------------------------ toy tasks
@needs_trl
@pytest.mark.parametrize("name", ["arith", "tagged-sum", "decompose"])
def test_toy_task_rewards_every_warm_up_target_and_tokenizes_it(name):
    from adapters.llm.toy import TOY_TASKS, build_tokenizer

    task = TOY_TASKS[name]()
    tokenizer = build_tokenizer()
    assert len(task.prompts) == len(task.answers) == len(task.targets)
    for prompt, answer, targets in zip(task.prompts, task.answers, task.targets):
        assert task.reward(list(targets), [answer] * len(targets)) == [1.0] * len(targets), prompt
        for text in (prompt, *targets):
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            assert tokenizer.unk_token_id not in ids and tokenizer.decode(ids) == text
            assert len(ids) < task.max_completion_length or text == prompt


@needs_trl
def test_tagged_sum_rewards_the_sum_after_any_tag_and_nothing_else():
    from adapters.llm.toy import TAGS, TOY_TASKS

    task = TOY_TASKS["tagged-sum"]()
    assert set(task.prompts) == {f"{a}+{b}=" for a in range(10) for b in range(10)}
    assert {t[0] for t in task.targets[task.prompts.index("3+4=")]} == set(TAGS)  # every tag is correct
    completions = ["c7", "j7", " a7 ", "7", "k7", "c8", "cc7", "c7+", "c07"]
    assert task.reward(completions, ["7"] * len(completions)) == [1.0, 1.0, 1.0, 0, 0, 0, 0, 0, 0]


# ------------------------------------------------------------------------------ pass@k, answers
@pytest.mark.parametrize(("n", "c"), [(8, 0), (8, 1), (8, 3), (8, 8), (5, 2)])
def test_pass_at_k_matches_enumeration(n, c):
    outcomes = [1] * c + [0] * (n - c)
    for k in range(1, n + 1):
        subsets = list(itertools.combinations(outcomes, k))
        assert pass_at_k(n, c, k) == pytest.approx(sum(any(s) for s in subsets) / len(subsets), abs=1e-12)
    assert pass_ks(16) == [1, 2, 4, 8, 16] and pass_ks(6) == [1, 2, 4, 6]


def test_hub_answers_are_extracted_and_compared():
    assert extract_answer(r"so \boxed{\frac{1}{2}} and then \boxed{42}") == "42"
    assert extract_answer(r"nested \boxed{\sqrt{\frac{3}{4}}}") == r"\sqrt{\frac{3}{4}}"
    assert extract_answer("work...\nAnswer: 17.") == "17"
    assert extract_answer("no answer here") is None
    rewards = math_reward(["Answer: 204", r"\boxed{ 204 }", "Answer: 205", [{"role": "assistant", "content": "Answer: 204"}]],
                          ["204"] * 4)
    assert rewards == [1.0, 1.0, 0.0, 1.0]
    assert dataset_spec("aime24", EVAL_SETS) == EVAL_SETS["aime24"]
    assert dataset_spec({"path": "me/set", "split": "test"}, EVAL_SETS) == DatasetSpec("me/set", split="test")
    with pytest.raises(ValueError, match="path"):
        dataset_spec({"split": "test"}, EVAL_SETS)


# ------------------------------------------------------------------------------ trials under TRL
QUICK = dict(eval_samples=4, learning_rate=2e-4)  # llm:decompose, its own 200-step warm-up (cached)


@needs_trl
def test_grpo_steps_run_under_trl(tmp_path):
    records = list(run_trial(spec(algo="grpo", task="llm:decompose", budget=2, **QUICK)))
    assert [r.step for r in records] == [0, 2]
    last = records[-1]
    assert 0.0 <= last.score <= 100.0 and last.entropy > 0.0
    assert {"pass@1", "pass@4", "greedy_accuracy", "train_reward", "train_token_entropy"} <= set(last.metrics)
    assert last.metrics["pass@1"] == pytest.approx(last.score)
    assert "frac_scaled_up" not in last.metrics and "entropy_floor" not in last.metrics


@needs_trl
def test_era_trial_resumes_from_its_checkpoint_without_redoing_the_warm_up(tmp_path, monkeypatch):
    from adapters.llm import toy as llm_toy

    era = spec(task="llm:decompose", budget=4, omega_low=2.5, omega_high=3.0, **QUICK)  # ERA acts at once
    straight = list(run_trial(era))
    assert [r.step for r in straight] == [0, 2, 4]
    assert straight[-1].metrics["frac_scaled_up"] > 0.0
    assert straight[-1].metrics["entropy_floor"] == 2.5

    interrupted = run_trial(era, tmp_path / "trial")
    first = [next(interrupted), next(interrupted)]
    interrupted.close()
    # the trial folder (what Ray Tune uploads as the checkpoint) holds TRL's trainer state once:
    # inside current/, not also in a working copy beside it
    assert sorted(p.name for p in (tmp_path / "trial").iterdir()) == ["current"]
    assert (tmp_path / "trial" / "current" / "trainer" / "trainer_state.json").is_file()

    def no_warm_up(*args, **kwargs):
        raise AssertionError("a resumed trial must take its warm-up from the checkpoint")

    monkeypatch.setattr(llm_toy, "warm_up_state", no_warm_up)
    rest = list(run_trial(era, tmp_path / "trial"))
    assert [r.step for r in first + rest] == [0, 2, 4]
    assert rest[0].wall_time_s > first[-1].wall_time_s
    for got, want in zip(first + rest, straight):  # exact: every bit of every metric
        assert {**got.as_row(), "wall_time_s": 0} == {**want.as_row(), "wall_time_s": 0}
    assert list(run_trial(era, tmp_path / "trial")) == []  # finished: nothing more to do


@needs_trl
@pytest.mark.parametrize("algo", ["grpo", "grpo-era"])
def test_evaluation_schedule_does_not_change_what_is_trained(algo):
    """The trainer stops at every evaluation and resumes from its checkpoint: evaluating every 3
    steps (mid-epoch: llm:decompose's epoch is 2 steps) must train the same model as evaluating
    only at the end."""
    def final(every: int):
        trial = TrialSpec(algo=algo, task="llm:decompose", seed=0, budget=6, eval_every=every, device="cpu",
                          settings={**QUICK, **({"omega_low": 2.5} if algo == "grpo-era" else {})})
        return list(run_trial(trial))[-1]

    once, segmented = final(6), final(3)
    assert once.step == segmented.step == 6
    assert segmented.score == once.score and segmented.entropy == pytest.approx(once.entropy, abs=1e-6)
    for key in ("greedy_accuracy", "token_entropy", "pass@4"):
        assert segmented.metrics[key] == pytest.approx(once.metrics[key], abs=1e-6), key


@needs_trl
def test_kl_term_uses_the_warmed_up_model_as_reference(tmp_path):
    records = list(run_trial(spec(task="llm:decompose", budget=2, beta=0.04, omega_low=2.5, **QUICK), tmp_path))
    assert records[-1].metrics["train_kl"] > 0.0 and records[-1].metrics["frac_scaled_up"] > 0.0
    assert (tmp_path / "reference" / "config.json").exists()


# ------------------------------------------------------------------------------ the entropy floor
#: suites/llm-toy.yaml's task and settings, for one seed
FLOOR_TASK, FLOOR_STEPS, OMEGA_LOW = "llm:tagged-sum", 600, 2.1
FLOOR_SETTINGS = dict(learning_rate=3e-4, eval_samples=4)
#: ERA's floor is a gate: a response is pushed up only once its entropy is below omega_low, so the
#: batch mean hovers just above omega_low and can dip under it between updates (suites/llm-toy.yaml,
#: 3 seeds: 2.091 to 2.191 over the second half of training, 2.143 / 2.125 / 2.143 at the end, where
#: GRPO ended at 1.194 / 1.824 / 1.599). The shortfall allowed on one seed's final model:
FLOOR_BAND = 0.1


@needs_trl
def test_era_holds_response_entropy_at_its_floor_while_grpo_collapses(tmp_path):
    """On llm:tagged-sum (a free tag the reward never reads, then the sum) GRPO's response entropy
    collapses from about 2.3 nats; GRPO-ERA's stays at its floor omega_low. Same seed, same
    warmed-up model; the final models are compared on 64 fresh samples per prompt, paired by prompt."""
    from scipy import stats
    from transformers import LlamaForCausalLM

    from adapters.trial.checkpoint import TrialCheckpoint
    from adapters.llm.evaluation import sampled_response_entropies
    from adapters.llm.toy import TOY_TASKS, build_tokenizer

    task = TOY_TASKS[FLOOR_TASK.removeprefix("llm:")]()
    start, per_prompt, finals = {}, {}, {}
    for algo, extra in (("grpo", {}), ("grpo-era", {"omega_low": OMEGA_LOW})):
        trial = TrialSpec(algo=algo, task=FLOOR_TASK, seed=0, budget=FLOOR_STEPS, eval_every=FLOOR_STEPS,
                          settings={**FLOOR_SETTINGS, **extra}, device="cpu")
        records = list(run_trial(trial, tmp_path / algo))
        start[algo], finals[algo] = records[0], records[-1]
        state = TrialCheckpoint(tmp_path / algo).load().state_dir / "trainer"
        model = LlamaForCausalLM.from_pretrained(state)
        entropies = sampled_response_entropies(model, build_tokenizer(), task.prompts, 64, task.max_completion_length,
                                               seed=123)
        per_prompt[algo] = entropies.reshape(len(task.prompts), 64).mean(1).numpy()

    grpo, era = per_prompt["grpo"], per_prompt["grpo-era"]
    print(f"response entropy after {FLOOR_STEPS} steps (seed 0, 64 samples x {len(task.prompts)} prompts): "
          f"grpo {grpo.mean():.3f}, grpo-era {era.mean():.3f}, omega_low {OMEGA_LOW}, started at "
          f"{start['grpo'].entropy:.3f}")
    assert start["grpo"].entropy == start["grpo-era"].entropy > OMEGA_LOW  # one warmed-up model, above the floor
    assert finals["grpo-era"].metrics["frac_scaled_up"] > 0.0  # ERA acted
    assert grpo.mean() < OMEGA_LOW - 0.5  # plain GRPO collapsed far below the floor
    assert era.mean() >= OMEGA_LOW - FLOOR_BAND  # ERA held it there
    # Paired by prompt (a prompt's responses share its tag's entropy, so the 100 prompts are the units)
    assert stats.ttest_rel(era, grpo, alternative="greater").pvalue < 1e-3
    assert (era > grpo).mean() > 0.9
