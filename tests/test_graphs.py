"""model.compile_mode=cuda-graphs: eager on a CPU; on a CUDA device (the GPU machine runs these,
CI has none) the recorded step against the eager one."""

from __future__ import annotations

import logging

import pytest
import torch

from src.config.checks import graphs
from src.lit.module import MNISTClassifier

from .helpers import SGD

NET = {"channels": [4, 8], "batch_norm": True}
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")


@pytest.fixture(autouse=True)
def full_fp32_convs():
    """cuDNN's convolutions in full fp32, not TF32: its rounding (~1e-3) would hide a step
    that is really different."""
    allowed = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32 = allowed


def twin_modules(device: str) -> tuple[MNISTClassifier, MNISTClassifier]:
    """An eager module and a cuda-graphs one with the same weights, in training mode."""
    options = {
        "optimizer": SGD,
        "scheduler": {},
        **NET,
    }
    torch.manual_seed(0)
    eager = MNISTClassifier(**options).to(device).train()
    graphed = MNISTClassifier(compile=True, compile_mode="cuda-graphs", **options)
    graphed.load_state_dict(eager.state_dict())
    return eager, graphed.to(device).train()


def sgd_steps(module: MNISTClassifier, batches: list) -> list[float]:
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    losses = []
    for batch in batches:
        loss, _, _ = module.step(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def batches(device: str, sizes: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    return [
        (torch.randn(n, 1, 28, 28, generator=generator).to(device),
         torch.randint(0, 10, (n,), generator=generator).to(device))
        for n in sizes
    ]  # fmt: skip


def test_cuda_graphs_on_a_cpu_train_eagerly_and_say_so(caplog) -> None:
    eager, graphed = twin_modules("cpu")
    data = batches("cpu", [16, 16, 16])
    with caplog.at_level(logging.INFO, logger="src.speed.graphs"):
        assert sgd_steps(graphed, data) == sgd_steps(eager, data)
    for name, value in eager.state_dict().items():
        assert torch.equal(value, graphed.state_dict()[name]), name
    assert graphed.training_graphs.graphed is None
    said = [r.getMessage() for r in caplog.records if r.name == "src.speed.graphs"]
    assert said == ["model.compile_mode=cuda-graphs: on cpu the net runs eagerly"]


@cuda
def test_recorded_step_matches_the_eager_one() -> None:
    eager, graphed = twin_modules("cuda")
    before = {name: b.clone() for name, b in graphed.named_buffers()}
    (x, y), = batches("cuda", [32])  # fmt: skip
    for module in (eager, graphed):
        loss, _, _ = module.step((x, y))
        loss.backward()
    # recording ran the net a few times: batch norm's statistics moved one step, as eager's did
    for name, buffer in graphed.named_buffers():
        torch.testing.assert_close(buffer, dict(eager.named_buffers())[name])
        assert not torch.equal(buffer, before[name]), name
    for name, parameter in graphed.named_parameters():
        torch.testing.assert_close(
            parameter.grad, dict(eager.named_parameters())[name].grad, rtol=1e-4, atol=1e-6
        )
    assert graphed.training_graphs.shape == (32, 1, 28, 28)


@cuda
def test_recorded_training_follows_eager_training() -> None:
    eager, graphed = twin_modules("cuda")
    data = batches("cuda", [32] * 5 + [20] + [32] * 4)  # a short batch runs eagerly
    kept = [x.clone() for x, _ in data]
    graphed_losses, eager_losses = sgd_steps(graphed, data), sgd_steps(eager, data)
    # the batches are as they were: recording once took the first as its input buffer, and
    # wrote each later batch into it
    assert all(torch.equal(x, before) for (x, _), before in zip(data, kept, strict=True))
    assert graphed_losses == pytest.approx(eager_losses, rel=1e-5)
    for name, parameter in graphed.named_parameters():
        torch.testing.assert_close(
            parameter, dict(eager.named_parameters())[name], rtol=1e-4, atol=1e-5
        )
    # eval mode: the net's own forward, no graph
    eager.eval(), graphed.eval()
    with torch.no_grad():
        torch.testing.assert_close(graphed(data[0][0]), eager(data[0][0]), rtol=1e-4, atol=1e-5)


@cuda
def test_moved_parameters_are_recorded_again(caplog) -> None:
    _, graphed = twin_modules("cuda")
    data = batches("cuda", [32, 32, 32])
    with caplog.at_level(logging.INFO, logger="src.speed.graphs"):
        sgd_steps(graphed, data[:1])
        with torch.no_grad():  # new storage, as a move to the CPU and back may give
            for parameter in graphed.parameters():
                parameter.data = parameter.data.clone()
        assert graphed.training_graphs.moved()
        reference = MNISTClassifier(
            optimizer=SGD, scheduler={}, **NET
        ).cuda().train()  # fmt: skip
        reference.load_state_dict(graphed.state_dict())
        graphed_losses = sgd_steps(graphed, data[1:])
    assert graphed_losses == pytest.approx(sgd_steps(reference, data[1:]), rel=1e-5)
    recorded = [r for r in caplog.records if r.getMessage().startswith("training step recorded")]
    assert len(recorded) == 2 and not graphed.training_graphs.moved()


@cuda
def test_a_short_first_batch_is_recorded_again_for_a_full_one() -> None:
    _, graphed = twin_modules("cuda")
    sgd_steps(graphed, batches("cuda", [20, 32, 20]))
    assert graphed.training_graphs.shape == (32, 1, 28, 28)


@cuda
def test_recording_draws_no_random_numbers() -> None:
    graphed = MNISTClassifier(
        optimizer=SGD, scheduler={}, compile=True,
        compile_mode="cuda-graphs", dropout=0.5, **NET,
    ).cuda().train()  # fmt: skip
    (x, _), = batches("cuda", [32])  # fmt: skip
    cpu_state, cuda_state = torch.get_rng_state(), torch.cuda.get_rng_state()
    graphed.training_graphs.record(x)
    assert torch.equal(torch.get_rng_state(), cpu_state)
    assert torch.equal(torch.cuda.get_rng_state(), cuda_state)


GRAPHS = {"compile": True, "compile_mode": "cuda-graphs"}


@pytest.mark.parametrize(
    ("model", "trainer"),
    [
        (GRAPHS, {"accelerator": "cpu", "precision": "bf16-mixed", "devices": 2,
                  "strategy": "ddp_spawn", "accumulate_grad_batches": 4}),  # eager there
        (GRAPHS, {"accelerator": "mps", "precision": "bf16-mixed"}),  # eager there too
        (GRAPHS, {"accelerator": "gpu", "devices": [1]}),
        (GRAPHS, {"accelerator": "gpu", "precision": "bf16-true"}),
        ({"compile": False, "compile_mode": "cuda-graphs"},
         {"accelerator": "gpu", "precision": "16-mixed", "devices": 4}),
    ],
)  # fmt: skip
def test_graphs_allowed(model: dict, trainer: dict) -> None:
    assert graphs(model, trainer) is None


@pytest.fixture
def cuda_found(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine where torch finds a CUDA device, as far as the config check asks."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


@pytest.mark.parametrize(
    ("trainer", "message"),
    [
        ({"accelerator": "gpu", "precision": "bf16-mixed"}, "trainer.precision='bf16-mixed'"),
        ({"accelerator": "gpu", "precision": "16"}, "trainer.precision='16'"),
        ({"accelerator": "gpu", "devices": 2}, "trainer.devices=2, trainer.num_nodes=1"),
        ({"accelerator": "gpu", "devices": "auto"}, "trainer.devices='auto'"),
        ({"accelerator": "gpu", "num_nodes": 2}, "trainer.num_nodes=2"),
        ({"accelerator": "gpu", "strategy": "ddp"}, "trainer.strategy='ddp'"),
        ({"accelerator": "gpu", "accumulate_grad_batches": 2},
         "trainer.accumulate_grad_batches=2: model.compile_mode=cuda-graphs records the step of "
         "one batch"),
    ],
)  # fmt: skip
def test_graphs_refused(cuda_found: None, trainer: dict, message: str) -> None:
    assert message in graphs(GRAPHS, trainer)


@pytest.mark.parametrize("accelerator", ["auto", "gpu", "cuda"])
@pytest.mark.parametrize("cuda", [True, False])
def test_graphs_are_checked_where_torch_finds_cuda(monkeypatch, accelerator, cuda) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    trainer = {"accelerator": accelerator, "precision": "bf16-mixed"}
    # accelerator=cuda names CUDA whatever torch finds (checks.accelerator refuses it without)
    refused = graphs(GRAPHS, trainer)
    if cuda or accelerator == "cuda":
        assert refused.startswith("trainer.precision='bf16-mixed'")
    else:  # the run is on the CPU (auto) or Apple's mps (gpu), where the net runs eagerly
        assert refused is None
