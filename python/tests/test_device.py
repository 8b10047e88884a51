"""The one --device rule of the GPU-capable stages."""
import pytest
import torch

from fatescope.device import resolve_device
from fatescope.errors import InputError


def test_auto_and_cpu():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_bad_devices_are_input_errors():
    with pytest.raises(InputError, match="not a valid torch device"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA is not available"):
            resolve_device("cuda")


def _stage_that_runs_out_of_gpu_memory(calls: list, error: Exception, on_cpu_too: bool = False):
    """A stage command whose work raises ``error`` unless it runs on the CPU (as a CUDA allocation would)."""
    import click

    from fatescope.cli.common import stage_command

    @stage_command("toy", help="toy stage")
    @click.option("--device", default="auto")
    def command(device: str) -> None:
        calls.append(device)
        if device != "cpu" or on_cpu_too:
            raise error
    return command


@pytest.mark.parametrize("error", [torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
                                   RuntimeError("CUDA out of memory. Tried to allocate 8.00 GiB (GPU 0)")])
def test_cuda_out_of_memory_runs_the_stage_again_on_the_cpu(caplog, error):
    from click.testing import CliRunner

    calls: list[str] = []
    with caplog.at_level("WARNING"):
        res = CliRunner().invoke(_stage_that_runs_out_of_gpu_memory(calls, error), ["--device", "cuda"])
    assert res.exit_code == 0, res.output
    assert calls == ["cuda", "cpu"]
    assert "CUDA out of memory with --device cuda" in caplog.text and "again on the CPU" in caplog.text


def test_other_errors_and_cpu_runs_are_not_retried():
    from click.testing import CliRunner

    calls: list[str] = []
    res = CliRunner().invoke(_stage_that_runs_out_of_gpu_memory(calls, ValueError("bad value")), ["--device", "cuda"])
    assert res.exit_code != 0 and calls == ["cuda"] and isinstance(res.exception, ValueError)
    calls.clear()  # an out-of-memory error of a CPU run is not a CUDA one to fall back from
    oom = _stage_that_runs_out_of_gpu_memory(calls, torch.cuda.OutOfMemoryError("CUDA out of memory"), on_cpu_too=True)
    res = CliRunner().invoke(oom, ["--device", "cpu"])
    assert res.exit_code != 0 and calls == ["cpu"]
