from __future__ import annotations

import math
from pathlib import Path

import hydra
import pytest
import torch

from src.config.build import instantiate
from src.core.architecture import analyze, plan_layers, unit_windows
from src.core.errors import ConfigError
from src.core.model import Net, mass_side
from src.lit.module import MNISTClassifier, build_optimization
from src.train import train

from .helpers import NO_VIEWS, SGD, TINY, TUTORIAL_CONV_PARAMS, compose_train, tiny_cfg


def param_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(
    "channels", [[8], [16, 32], [32, 64], [8, 16, 32], [8, 16, 32, 64, 128], [4] * 9]
)
@pytest.mark.parametrize("batch_norm", [False, True])
def test_any_channel_list_gives_log_probs_over_ten_digits(
    channels: list[int], batch_norm: bool
) -> None:
    net = Net(channels, batch_norm=batch_norm).eval()
    out = net(torch.randn(5, 1, 28, 28))
    assert out.shape == (5, 10)
    torch.testing.assert_close(out.exp().sum(dim=1), torch.ones(5))
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [*channels, 10]


def test_tutorial_preset_rebuilds_the_tutorial_net(tmp_path: Path) -> None:
    cfg = compose_train(["model=tutorial"], tmp_path)
    module = hydra.utils.instantiate(cfg.model, _convert_="all")
    net = module.net
    assert param_count(net) == 6_379_786
    names = [name for name, m in net.named_children() if not isinstance(m, torch.nn.ReLU)]
    assert names == [
        "conv1", "conv2", "pool1", "conv3", "conv4", "pool2", "conv5", "conv6", "conv7",
        "flatten", "log_softmax",
    ]  # fmt: skip
    assert [net.get_submodule(f"conv{i}").padding for i in range(1, 8)] == [(1, 1)] * 4 + [
        (0, 0)
    ] * 3
    convs = [net.get_submodule(f"conv{i}") for i in range(1, 8)]
    assert [param_count(conv) for conv in convs] == TUTORIAL_CONV_PARAMS
    assert not isinstance(list(net.children())[-3], torch.nn.ReLU)  # no ReLU on the logits
    assert net(torch.randn(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize(
    ("preset", "max_params", "max_epochs"),
    [("tiny", 8_000, 15), ("micro", 5_000, 15), ("best", None, 20)],
)
def test_accuracy_presets_keep_within_their_budgets(
    preset: str, max_params: int | None, max_epochs: int, tmp_path: Path
) -> None:
    cfg = compose_train([f"experiment={preset}"], tmp_path)
    net = hydra.utils.instantiate(cfg.model, _convert_="all").net
    if max_params is not None:
        assert param_count(net) <= max_params
    assert cfg.trainer.max_epochs <= max_epochs
    assert net(torch.randn(2, 1, 28, 28)).shape == (2, 10)


def test_final_relu_flag_puts_the_tutorial_relu_back() -> None:
    kinds = [layer.kind for layer in plan_layers([8, 16], final_relu=True)]
    assert kinds[-2:] == ["conv", "relu"]
    assert [layer.kind for layer in plan_layers([8, 16])][-1] == "conv"


def test_dropout_follows_each_hidden_relu_and_is_off_in_eval_mode() -> None:
    net = Net([8, 16, 16], batch_norm=True, dropout=0.2)
    drops = {name: m for name, m in net.named_children() if isinstance(m, torch.nn.Dropout)}
    assert list(drops) == ["drop1", "drop2", "drop3"]
    assert all(m.p == 0.2 for m in drops.values())
    names = [name for name, _ in net.named_children()]
    assert names.index("drop1") == names.index("relu1") + 1
    assert param_count(net) == param_count(Net([8, 16, 16], batch_norm=True))
    x = torch.randn(4, 1, 28, 28)
    net.eval()
    torch.testing.assert_close(net(x), net(x))
    net.train()
    assert not torch.allclose(net(x), net(x))


def test_pools_follow_every_second_conv_but_never_near_the_output() -> None:
    layers = [layer for layer in plan_layers([8, 8, 16, 16, 32, 32]) if layer.kind != "relu"]
    names = [layer.name for layer in layers]
    assert names == [
        "conv1",
        "conv2",
        "pool1",
        "conv3",
        "conv4",
        "pool2",
        "conv5",
        "conv6",
        "gap",
        "conv7",
    ]
    # two channels: a pool after conv2 would sit right before the logits conv
    assert "maxpool" not in [layer.kind for layer in plan_layers([8, 16])]
    # pooling stops at 7x7: 28 -> 14 -> 7, no third pool however many convs follow
    assert sum(layer.kind == "maxpool" for layer in plan_layers([8] * 12)) == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"channels": [8, 8], "head": "conv"}, r"model\.head=conv needs a 1x1 map .* leaves 28x28"),
        ({"channels": [8] * 20, "valid_tail": 18}, r"layer conv\d+ .* would shrink it below 1x1"),
    ],
)
def test_layouts_the_sizes_do_not_allow_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Net(**kwargs)


def test_label_smoothing_mixes_the_label_loss_with_the_mean_over_digits() -> None:
    module = MNISTClassifier(
        optimizer=SGD,
        scheduler={},
        channels=[8],
    )
    batch = (torch.randn(6, 1, 28, 28), torch.tensor([0, 1, 2, 3, 4, 9]))
    with torch.no_grad():
        plain, step_log_probs, _ = module.step(batch)
        smoothed, _, _ = module.step(batch, label_smoothing=0.1)
        log_probs = module(batch[0])
    assert plain == pytest.approx(-log_probs[range(6), batch[1]].mean().item(), rel=1e-5)
    expected = 0.9 * plain - 0.1 * log_probs.mean(dim=1).mean()
    assert smoothed.item() == pytest.approx(expected.item(), rel=1e-5)
    assert torch.equal(step_log_probs, log_probs)


@pytest.mark.slow  # torch.compile of a whole run
def test_compiled_net_trains_and_keeps_its_checkpoint_keys(
    tiny_data_dir: Path, tmp_path: Path
) -> None:
    cfg = compose_train(
        [f"data.data_dir={tiny_data_dir}", *TINY, "debug=fdr", "model.channels=[4]",
         "model.compile=true", "data.drop_last=true"],
        tmp_path,
    )  # fmt: skip
    result = train(cfg)
    assert result["metrics"]["train/loss"] > 0 and "test/acc" in result["metrics"]
    compiled = instantiate(cfg.model, _convert_="all")
    plain = instantiate(cfg.model, _convert_="all", compile=False)
    assert compiled.state_dict().keys() == plain.state_dict().keys()  # no _orig_mod. prefix


@pytest.mark.parametrize("compile_eval", [True, False])
def test_compile_eval_false_runs_eval_eagerly_training_compiled(compile_eval: bool) -> None:
    torch._dynamo.reset()
    graphs = torch._dynamo.utils.counters["stats"]
    graphs.clear()  # the counters outlive reset()
    torch.manual_seed(0)
    module = MNISTClassifier(
        optimizer=SGD, scheduler={}, channels=[4],
        compile=True, compile_eval=compile_eval,
    )  # fmt: skip
    x = torch.randn(8, 1, 28, 28)
    module(x).sum().backward()  # training mode: compiled
    assert graphs["unique_graphs"] == 1
    module.eval()
    with torch.no_grad():
        evaluated = module(x)
    # without gradients eval is a second graph, compiled only with compile_eval
    assert graphs["unique_graphs"] == (2 if compile_eval else 1)
    with torch.no_grad():
        torch.testing.assert_close(evaluated, module.net.forward(x), atol=1e-5, rtol=0)
    module.train()
    module(x).sum().backward()  # training again: the first graph, not a new one
    assert graphs["unique_graphs"] == (2 if compile_eval else 1)
    torch._dynamo.reset()


def test_the_class_activation_maps_mean_is_the_logit() -> None:
    torch.manual_seed(0)
    net = Net([8, 8, 16, 16, 32, 32], batch_norm=True).eval()
    log_probs, captured = net.record(torch.randn(6, 1, 28, 28), inputs=["gap"])
    maps = net.class_activation_maps(captured["gap:input"])
    assert maps.shape == (6, 10, 7, 7)
    # the 1x1 conv is linear: its mean over the map (bias included) is the logit
    torch.testing.assert_close(maps.mean(dim=(2, 3)).log_softmax(1), log_probs, atol=1e-5, rtol=0)


@pytest.mark.parametrize("pool_every", [99, 2])  # no pool; pools after conv2 and conv4
def test_at_initialisation_the_centre_gradient_stays_in_the_receptive_field(pool_every) -> None:
    torch.manual_seed(0)
    net = Net([8, 8, 16, 16], batch_norm=True, pool_every=pool_every)
    images = torch.randn(10, 1, 28, 28)
    for name, _, (low, high), _ in unit_windows(analyze(net.specs, 28)):
        gradient = net.centre_gradient(images, name)
        inside = torch.zeros(28, 28, dtype=torch.bool)
        inside[max(int(low), 0) : int(high), max(int(low), 0) : int(high)] = True
        assert gradient[~inside].abs().max() == 0, name  # exactly: nothing outside is seen
        if pool_every == 99:  # without max-pooling every pixel inside reaches the unit
            assert (gradient[inside] > 0).all(), name
        else:
            assert gradient[inside].sum() > 0, name
    assert net.training  # put back in the mode it was in (built in training mode)


def test_mass_side_is_the_smallest_centred_square_holding_90_percent() -> None:
    gradient = torch.zeros(28, 28)
    gradient[12:15, 12:15] = 1.0  # 9 units of mass in the centre 3x3
    assert mass_side(gradient, (13, 13)) == 3
    gradient[13, 16] = 2.0  # 2 more, two columns right of the 3x3: 9/11 < 90% until side 7
    assert mass_side(gradient, (13, 13)) == 7
    assert mass_side(torch.zeros(28, 28), (13, 13)) == 0


@pytest.mark.parametrize(("steps", "pct_start"), [(5, 0.2), (10, 0.1), (7, 1 / 7)])
def test_one_cycle_with_a_warm_up_of_one_step_runs_its_schedule(
    steps: int, pct_start: float
) -> None:
    # pct_start x steps = 1: torch's OneCycleLR alone divides by zero (its warm-up would end at
    # the step where it starts)
    weight = torch.zeros(1, requires_grad=True)
    optimizer, scheduler = build_optimization(
        [weight],
        SGD,
        {
            "_target_": "torch.optim.lr_scheduler.OneCycleLR",
            "_partial_": True,
            "pct_start": pct_start,
        },
        steps,
    )
    lrs = [optimizer.param_groups[0]["lr"]]
    for _ in range(steps - 1):
        optimizer.step()
        scheduler.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    lowest, last = 0.1 / 25, 0.1 / 25 / 1e4  # max_lr / div_factor, then / final_div_factor
    assert lrs[0] == pytest.approx(lowest)
    # then cosine annealing from the peak at step 0, as for a warm-up a hair longer
    down = [
        last + (0.1 - last) * (1 + math.cos(math.pi * k / (steps - 1))) / 2 for k in range(steps)
    ]
    assert lrs[1:] == pytest.approx(down[1:])


def test_a_plateau_schedule_steps_on_the_validation_loss(
    tiny_data_dir: Path, tmp_path: Path
) -> None:
    plateau = ["model/scheduler=none", "+model.scheduler._partial_=true",
               "+model.scheduler._target_=torch.optim.lr_scheduler.ReduceLROnPlateau",
               "+model.scheduler.patience=0", "trainer.max_epochs=2", "test=false"]  # fmt: skip
    cfg = tiny_cfg(tiny_data_dir, tmp_path, *NO_VIEWS, *plateau)
    result = train(cfg)
    assert result["epochs"] == 2 and math.isfinite(result["metrics"]["val/loss"])
