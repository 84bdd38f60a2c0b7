"""helpers.core: parameter checks, device resolution, seeding and the run report."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

import helpers
from helpers import core
from helpers.core import check_params, one_of, resolve_device, seed_everything


def test_valid_parameters_pass_through_with_types_kept():
    p = check_params(seed=3, epochs=2, dataset="mnist", device="cpu", lr=0.1, fast=True, injected=set())
    assert p == {"seed": 3, "epochs": 2, "dataset": "mnist", "device": "cpu", "lr": 0.1, "fast": True}
    assert p.epochs == 2 and "epochs=2" in repr(p)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"epochs": "ten"}, ["epochs", "'ten'", "whole number"]),
        ({"epochs": -1}, ["epochs", "-1", ">= 1"]),
        ({"epochs": 2.5}, ["epochs", "whole number"]),
        ({"batch_size": 0}, ["batch_size", ">= 1"]),
        ({"seed": True}, ["seed", "whole number"]),
        ({"lr": 0}, ["lr", "> 0"]),
        ({"dataset": "fashion-mnist"}, ["dataset", "did you mean 'fashion_mnist'", "valid choices"]),
        ({"dataset": "imagenet"}, ["dataset", "'imagenet'", "'digits'"]),
        ({"device": "tpu"}, ["device", "'tpu'", "'cpu'"]),
        ({"fast": "yes"}, ["fast", "True or False"]),
    ],
)
def test_bad_parameters_name_the_parameter_value_and_fix(kwargs, words):
    with pytest.raises(ValueError) as err:
        check_params(injected=set(), **kwargs)
    for word in words:
        assert word in str(err.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_gpu_is_a_clear_error():
    with pytest.raises(ValueError, match="no CUDA GPU is available.*device='auto'"):
        check_params(device="cuda", injected=set())


def test_unknown_injected_parameter_is_an_error_with_a_suggestion():
    with pytest.raises(ValueError, match=r"unknown parameter 'epoch' \(did you mean 'epochs'\?\)"):
        check_params(seed=0, epochs=3, injected={"epoch", "seed"})


def test_injected_names_are_read_from_ipython_history(monkeypatch):
    class Shell:
        user_ns = {"In": ["", "seed = 0", "# Parameters\nepochs = 2\nbatchsize = 4\n"]}

    monkeypatch.setattr("IPython.get_ipython", lambda: Shell())
    with pytest.raises(ValueError, match="batchsize"):
        check_params(seed=0, epochs=2, batch_size=8)


def test_dataset_choices_can_be_restricted():
    with pytest.raises(ValueError, match="valid choices: 'digits', 'mnist'"):
        check_params(dataset="cifar10", datasets=("digits", "mnist"), injected=set())


def test_one_of_rule():
    rule = one_of(["cat", "coffee"])
    assert rule("photo", "cat") == "cat"
    with pytest.raises(ValueError, match="did you mean 'coffee'"):
        rule("photo", "cofee")


def test_data_dir_checks(tmp_path):
    assert check_params(data_dir=None, injected=set())["data_dir"] is None
    assert check_params(data_dir=str(tmp_path), injected=set())["data_dir"] == tmp_path
    with pytest.raises(ValueError, match="does not exist; create it"):
        check_params(data_dir=str(tmp_path / "new"), injected=set())
    assert check_params(output_dir=str(tmp_path / "new"), injected=set())["output_dir"] == tmp_path / "new"
    afile = tmp_path / "f.txt"
    afile.write_text("x")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        check_params(data_dir=str(afile), injected=set())
    with pytest.raises(ValueError, match="cannot be created"):
        check_params(output_dir=str(afile / "sub"), injected=set())
    with pytest.raises(ValueError, match="must be a folder path"):
        check_params(output_dir=3, injected=set())


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ValueError, match="valid choices"):
        resolve_device("gpu")


def test_seed_everything_repeats_all_generators():
    seed_everything(7)
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    seed_everything(7)
    assert a == (random.random(), np.random.rand(), torch.rand(1).item())


def test_setup_prints_report_and_finish_adds_wall_time(capsys):
    report = helpers.setup({"seed": 1, "device": "cpu", "epochs": 2})
    out = capsys.readouterr().out
    assert "device: cpu" in out and "seed: 1" in out and "epochs=2" in out and "torch" in out
    report.finish()
    assert "wall time" in capsys.readouterr().out
    assert torch.initial_seed() == 1


def test_chapters_have_english_and_chinese_titles():
    assert list(helpers.CHAPTERS) == ["01", "02", "03", "04", "05", "06"]
    for english, chinese in helpers.CHAPTERS.values():
        assert english.isascii() and not chinese.isascii()


def test_public_rule_factories():
    from helpers.core import fraction, whole_number

    assert whole_number(2)("width", 4) == 4
    with pytest.raises(ValueError, match="width=1 is out of range: it must be >= 2"):
        whole_number(2)("width", 1)
    assert fraction()("p", 0.5) == 0.5
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        fraction()("p", 1.5)
    with pytest.raises(ValueError, match="threads"):
        check_params(threads=0, injected=set())


# --------------------------------------------------------------------------- every parameter has a rule


def test_a_parameter_without_a_rule_is_rejected():
    with pytest.raises(ValueError, match=r"'depth' has no rule"):
        helpers.check_params(seed=0, depth=20, injected=set())
    p = helpers.check_params(seed=0, depth=20, rules={"depth": core.whole_number(1)}, injected=set())
    assert p.depth == 20


@pytest.mark.parametrize(
    ("rule", "bad", "message"),
    [
        (lambda: core.whole_number(1, 10), "ten", "must be a whole number"),
        (lambda: core.whole_number(1, 10), 11, "must be <= 10"),
        (lambda: core.number(0, 1), "0.5", "must be a number"),
        (lambda: core.number(0, strict_minimum=True), 0, "out of range"),
        (lambda: core.boolean(), "no", "must be True or False"),
        (lambda: core.one_of(["a", "b"]), True, "must be one of"),
        (lambda: core.list_of(core.whole_number(1)), 5, "must be a list"),
        (lambda: core.list_of(core.whole_number(1)), [1, "x"], r"x\[1\]='x' must be a whole number"),
        (lambda: core.list_of(core.whole_number(1), min_length=2), [1], "at least 2"),
        (lambda: core.existing_path("folder"), None, "must be the path of an existing folder"),
        (lambda: core.existing_path("file"), "/no/such/file.pt", "no such file"),
        (lambda: core.text(r"[a-z]+"), "A1", "must match"),
    ],
)
def test_rule_factories_reject_wrong_values_naming_the_parameter(rule, bad, message):
    with pytest.raises(ValueError, match=message) as info:
        rule()("x", bad)
    assert "x" in str(info.value)


def test_rule_factories_accept_good_values(tmp_path):
    assert core.number(0, 1)("x", 1) == 1.0
    assert core.list_of(core.number(0))("x", (1, 2.5)) == [1.0, 2.5]
    assert core.optional(core.whole_number(1))("x", None) is None
    assert core.existing_path("folder")("x", str(tmp_path)) == tmp_path
    assert core.boolean()("x", False) is False


# --------------------------------------------------------------------------- helpers.check


def test_check_compares_shapes_before_values(capsys):
    import numpy as np

    assert helpers.check("same", np.ones(3), np.ones(3)) == 0.0
    assert "max |ours - torch| = 0.0e+00  ✓" in capsys.readouterr().out
    with pytest.raises(AssertionError, match=r"shape \(3,\) \(ours\) != \(1,\)"):
        helpers.check("broadcast", np.ones(3), np.ones(1))
    with pytest.raises(AssertionError, match="shape"):
        helpers.check("scalar vs matrix", 1.0, np.ones((2, 3)))
    with pytest.raises(AssertionError, match="max"):
        helpers.check("off", np.zeros(2), np.array([0.0, 1e-3]), tol=1e-6)
    with pytest.raises(AssertionError, match="nan"):
        helpers.check("nan", np.array([np.nan]), np.array([0.0]))
