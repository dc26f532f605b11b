"""Suites: a YAML file naming algorithms x tasks x seeds, validated on load, expanded into trials.

The shape (every field is checked; unknown ones are refused)::

    name: smoke                      # also the default results folder: results/<name>/
    benchmark: auto                  # normalization table: gym_mujoco | dmc | humanoidbench |
                                     #   classification | llm | auto (infer per task, default) | none
    paper: continuous_control.ppo    # optional: entry of harness/data/paper_results.yaml
    sources: ["where the hyperparameters come from"]
    algorithms:                      # label -> block (label = registry name unless `algo:` is set)
      ppo: {settings: {n_steps: 256}}
      ppo-era:
        settings: {entropy_per_dim: -0.5}
        sweep: {entropy_per_dim: [-1.0, -0.5, 0.0]}   # one variant per value
        tasks: [gym:Pendulum-v1]     # optional: only these of the suite's tasks
      sac: {settings_from: rl-zoo3}  # optional (SB3 algorithms): rl-baselines3-zoo's hyperparameters
    tasks:                           # a list, or task -> overrides (the rl-baselines3-zoo shape)
      gym:Pendulum-v1: {budget: 4000, settings: {learning_rate: 0.001}}
      digits: {budget: {epochs: 2}}
    seeds: 3                         # a count (0..N-1) or a list
    budget: {steps: 2000, epochs: 1} # or one number; per task overridable
    eval: {every: {steps: 500, epochs: 1}, episodes: 5}
    resources: {cpus: 1, gpus: 0}    # per trial; fractions allowed
    settings: {}                     # settings every algorithm starts from
    max_concurrent: 4                # optional
    max_failures: 1                  # retries of a failing trial (from its last checkpoint)
    search:                          # optional: search one entry's settings (harness/suite/search.py)
      algorithm: ppo-era             # its trials come from the search; `seeds` above are held out
      baseline: ppo
      samples: 6
      seeds: [0, 1]
      space: {entropy_per_dim: {uniform: [-1.5, 1.0]}}

Settings merge shallowly, later wins: ``settings_from`` values < suite ``settings`` < task
``settings`` < algorithm ``settings`` < the variant's sweep value. A variant is named
``label[key=value,...]``.

``settings_from: rl-zoo3`` (``sac``, ``sac-era``, ``ppo``, ``ppo-era``) takes rl-baselines3-zoo's
published hyperparameters for the algorithm on each of its tasks as the base of its settings: any
setting the suite gives anywhere wins over the zoo's (shallowly: a suite's ``policy_kwargs``
replaces the zoo's whole ``policy_kwargs``). The entry is the task's Gymnasium id, else the same
name at the newest version the zoo has (``HalfCheetah-v5`` -> ``HalfCheetah-v4``); a task the
zoo has no entry for is an error at the ``settings_from`` line. What cannot be taken (the zoo's own
options such as ``n_envs`` and ``normalize``, linear schedules, gSDE and ``ent_coef`` for the ERA
variants) is dropped with the reason; ``era list`` prints what was taken and dropped per algorithm
and task, and the taken values are part of each trial's settings (its hash, its results). Rules:
:mod:`adapters.rl.zoo`.
"""

from __future__ import annotations

from harness.suite.expansion import check_trials, expand, load_and_expand
from harness.suite.loading import load_suite
from harness.suite.model import AlgorithmEntry, Budget, Resources, Suite, TaskEntry, Trial, Variant, trial_hash

__all__ = [
    "Budget",
    "Resources",
    "AlgorithmEntry",
    "TaskEntry",
    "Variant",
    "Suite",
    "Trial",
    "load_suite",
    "expand",
    "check_trials",
    "load_and_expand",
    "trial_hash",
]
