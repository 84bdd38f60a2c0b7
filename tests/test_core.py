"""helpers.core: parameter checks, device resolution, seeding and the run report."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

import helpers
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
