"""scripts/ddp_train.py under torchrun: 2 processes, gloo on CPU, loopback, bounded time."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # starts torchrun processes

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "ddp_train.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(tmp_path: Path, nproc: int, *extra: str) -> dict:
    out = tmp_path / f"result{nproc}.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--nnodes=1",
           "--master_addr=127.0.0.1", f"--master_port={free_port()}", str(SCRIPT),
           "--steps", "5", "--max-seconds", "60", "--out", str(out), *extra]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return json.loads(out.read_text())


def test_two_processes_average_gradients_like_one_full_batch(tmp_path):
    result = torchrun(tmp_path, 2)
    assert result["world_size"] == 2 and result["backend"] == "gloo"
    assert result["max_grad"] > 1e-3  # the gradients compared are not trivially zero
    assert result["max_grad_diff"] < 1e-6, result
    assert result["max_param_diff"] < 1e-6, result
    assert result["steps"] == 5 and result["images_per_second"] > 0


def test_bad_arguments_fail_before_starting():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--steps", "0"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--steps" in proc.stderr
