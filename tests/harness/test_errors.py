"""One line per error: an exception's type and the first line of its message, from the exception
itself (Ray's RayTaskError unwrapped to its cause) or from the text of a traceback."""

from __future__ import annotations

import traceback

import pytest

from adapters.errors import TrainingDivergedError
from harness.errors import error_line

TENSOR = "tensor([[nan],\n        [nan],\n        [nan]], grad_fn=<AddmmBackward0>)"
MULTI = f"Expected parameter loc (Tensor of shape (3, 1)) of distribution Normal to satisfy Real(), but found invalid values:\n{TENSOR}"


def _raised() -> BaseException:
    """A TrainingDivergedError raised from torch-like ValueError with a many-line message."""
    try:
        try:
            raise ValueError(MULTI)
        except ValueError as cause:
            raise TrainingDivergedError(f"trial ppo diverged near step 64: {MULTI}") from cause
    except TrainingDivergedError as error:
        return error


EXPECTED = ("TrainingDivergedError: trial ppo diverged near step 64: Expected parameter loc (Tensor of shape "
            "(3, 1)) of distribution Normal to satisfy Real(), but found invalid values:")


def test_an_exception_gives_its_type_and_first_line():
    assert error_line(_raised()) == EXPECTED
    assert error_line(RuntimeError("boom")) == "RuntimeError: boom"
    assert error_line(KeyboardInterrupt()) == "KeyboardInterrupt"


def test_a_ray_task_error_gives_its_cause():
    from ray.exceptions import RayTaskError

    cause = _raised()
    text = "".join(traceback.format_exception(cause))
    wrapped = RayTaskError("ImplicitFunc.train", text, cause).as_instanceof_cause()
    assert "RayTaskError" in type(wrapped).__name__
    assert error_line(wrapped) == EXPECTED


def test_a_traceback_text_gives_its_final_exception():
    cause = _raised()
    text = "".join(traceback.format_exception(cause))
    assert text.strip().endswith("grad_fn=<AddmmBackward0>)")  # the last line is no use
    assert error_line(text) == EXPECTED
    # as Ray writes it: a coloured header before each traceback, the module path on the type
    ray_text = ("\x1b[36mray::ImplicitFunc.train()\x1b[39m (pid=1, ip=1.2.3.4, repr=run_suite_trial)\n"
                + text.replace("TrainingDivergedError:", "adapters.errors.TrainingDivergedError:"))
    assert error_line(ray_text) == EXPECTED
    wrapped = text.replace("TrainingDivergedError:", "ray.exceptions.RayTaskError(adapters.errors.TrainingDivergedError):")
    assert error_line(wrapped) == EXPECTED


@pytest.mark.parametrize(("text", "line"), [
    ("TrainingDivergedError: NaN in the critic at step 2000\nTraceback line",
     "TrainingDivergedError: NaN in the critic at step 2000"),
    ("  \nThe actor died unexpectedly before finishing this task.\n  class_name: ImplicitFunc\n",
     "The actor died unexpectedly before finishing this task."),
    ("", "the trial failed without an error message"),
])
def test_texts_without_a_traceback_give_their_first_line(text, line):
    assert error_line(text) == line


def test_a_very_long_first_line_is_cut():
    line = error_line(ValueError("x" * 2000))
    assert line.startswith("ValueError: xxx") and len(line) <= 300 and line.endswith("…")
