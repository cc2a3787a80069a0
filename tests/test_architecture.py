from __future__ import annotations

import re
import subprocess
import sys
from itertools import pairwise
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from src.core.architecture import (
    analyze,
    check_architecture,
    conv,
    maxpool,
    plan_layers,
    receptive_field_box,
    relu,
    table_rows,
    totals,
    unit_windows,
)
from src.core.errors import ConfigError
from src.core.model import Net
from src.inspect import main as inspect_main

from .helpers import ROOT, TUTORIAL_CONV_PARAMS, in_process


def test_200_unpadded_3x3_convs_bring_401_to_1() -> None:
    layers = [conv(f"conv{i}", 1, 1) for i in range(1, 201)]
    sizes = [row.out_size for row in analyze(layers, 401)]
    assert sizes[0] == 399 and sizes[-2] == 3 and sizes[-1] == 1


def test_a_pool_after_every_five_convs_brings_400_to_1_in_27_convs() -> None:
    layers = []
    for block in range(4):
        layers += [conv(f"conv{5 * block + i}", 1, 1) for i in range(1, 6)]
        layers.append(maxpool(f"pool{block + 1}", 1))
    layers += [conv(f"conv{i}", 1, 1) for i in range(21, 28)]
    rows = analyze(layers, 400)
    assert sum(row.layer.kind == "conv" for row in rows) == 27
    ends = [row.out_size for row in rows if row.layer.kind == "maxpool"]
    before = [rows[i - 1].out_size for i, row in enumerate(rows) if row.layer.kind == "maxpool"]
    assert before == [390, 185, 82, 31] and ends == [195, 92, 41, 15]
    assert [row.out_size for row in rows[-7:]] == [13, 11, 9, 7, 5, 3, 1]


def test_parameter_table_without_bias() -> None:
    channels = [3, 32, 64, 128, 256, 512, 512]
    layers = [conv(f"conv{i}", a, b, bias=False) for i, (a, b) in enumerate(pairwise(channels))]
    weights = [row.weights for row in analyze(layers, 400)]
    assert weights == [864, 18_432, 73_728, 294_912, 1_179_648, 2_359_296]
    assert all(row.biases == 0 for row in analyze(layers, 400))


def test_tutorial_net_summary() -> None:
    stats = analyze(plan_layers([32, 64, 128, 256, 512, 1024], head="conv", valid_tail=3), 28)
    convs = [row for row in stats if row.layer.kind == "conv"]
    assert [row.params for row in convs] == TUTORIAL_CONV_PARAMS
    assert [row.out_size for row in convs] == [28, 28, 14, 14, 5, 3, 1]
    assert [row.receptive_field for row in convs] == [3, 5, 10, 14, 24, 32, 40]
    total = table_rows(stats)[-1]
    assert total[0] == "total" and total[-2] == "6,379,786" and total[4] == "40x40 (conv7)"


def test_receptive_field_jump_and_start_by_hand() -> None:
    # 5x5 input, two 3x3 convs with stride 2 and padding 1 (the receptive-field arithmetic guide's
    # example): sizes 3 then 2, jumps 2 then 4, fields 3 then 7, first centre at 0.5 both times.
    layers = [conv("a", 1, 1, padding=1, stride=2), conv("b", 1, 1, padding=1, stride=2)]
    rows = analyze(layers, 5)
    assert [(r.out_size, r.jump, r.receptive_field, r.start) for r in rows] == [
        (3, 2, 3, 0.5),
        (2, 4, 7, 0.5),
    ]
    # conv 3x3 p1, max-pool 2x2, conv 3x3 p1, conv 3x3 stride 2 unpadded, on 28x28
    stack = [
        conv("c1", 1, 4, padding=1),
        maxpool("p1", 4),
        conv("c2", 4, 8, padding=1),
        conv("c3", 8, 8, stride=2),
    ]
    rows = analyze(stack, 28)
    assert [r.out_size for r in rows] == [28, 14, 14, 6]
    assert [r.receptive_field for r in rows] == [3, 4, 8, 12]
    assert [r.jump for r in rows] == [1, 2, 2, 4]
    assert [r.start for r in rows] == [0.5, 1.0, 1.0, 3.0]
    assert [r.macs for r in rows] == [36 * 28 * 28, 0, 288 * 14 * 14, 576 * 6 * 6]


def test_a_1x1_transition_mixes_channels_without_growing_the_field() -> None:
    layers = plan_layers([8, 16, 8, 16], kernels=[3, 3, 1, 3], pool_every=3, batch_norm=True)
    rows = {r.layer.name: r for r in analyze(layers, 28)}
    assert [n for n in rows if n.startswith(("conv", "pool"))] == [
        "conv1", "conv2", "conv3", "pool1", "conv4", "conv5",
    ]  # fmt: skip
    assert rows["conv3"].layer.kernel == 1 and rows["conv3"].layer.padding == 0
    assert rows["conv3"].receptive_field == rows["conv2"].receptive_field == 5
    assert rows["conv3"].out_size == 28
    assert rows["conv3"].params == 16 * 8  # no bias under batch norm
    assert rows["conv4"].params == 8 * 16 * 9  # half of what a 16->16 3x3 conv costs
    assert rows["conv4"].receptive_field == 6 + 2 * 2  # after the pool, jump 2


@pytest.mark.parametrize(
    ("channels", "options"),
    [
        ([8], {}),
        ([16, 32], {}),
        ([8, 16, 32, 64], {"batch_norm": True}),
        ([8, 8, 16, 16, 32, 32], {"valid_tail": 2}),
        ([32, 64, 128, 256, 512, 1024], {"head": "conv", "valid_tail": 3}),
        ([8, 8, 8], {"pool_every": 1, "final_relu": True}),
        ([8, 10, 12, 14, 14, 16], {"batch_norm": True, "dropout": 0.1}),
        ([8, 16, 8, 12, 16], {"kernels": [3, 3, 1, 3, 5], "pool_every": 3, "valid_tail": 1}),
    ],
)
def test_table_matches_what_torch_builds(channels: list[int], options: dict) -> None:
    net = Net(channels, **options).eval()
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [
        net.get_submodule(spec.name).register_forward_hook(
            lambda m, i, out, name=spec.name: shapes.__setitem__(name, tuple(out.shape[1:]))
        )
        for spec in net.specs
    ]
    with torch.no_grad():
        net(torch.zeros(1, 1, 28, 28))
    for hook in hooks:
        hook.remove()
    for row in analyze(net.specs, 28):
        size = row.out_size
        assert shapes[row.layer.name] == (row.layer.out_channels, size, size), row.layer.name
        module = net.get_submodule(row.layer.name)
        assert sum(p.numel() for p in module.parameters()) == row.params, row.layer.name
    total = int(table_rows(analyze(net.specs, 28))[-1][-2].replace(",", ""))
    assert total == sum(p.numel() for p in net.parameters())


def test_warnings() -> None:
    assert check_architecture(analyze(plan_layers([16, 16, 32, 32, 64, 64]), 28)) == []
    small = check_architecture(analyze(plan_layers([8, 16]), 28))
    assert (
        len(small) == 1 and "conv2 is 5x5" in small[0] and "never sees the whole digit" in small[0]
    )
    relu_on_logits = check_architecture(analyze(plan_layers([8] * 6, final_relu=True), 28))
    assert any("relu7 is a ReLU on the logits" in w for w in relu_on_logits)
    late_pool = [conv("c1", 1, 8, padding=1), relu("r1", 8), maxpool("p1", 8), conv("c2", 8, 10)]
    assert any(
        "p1 is a max-pool within the last two conv layers" in w
        for w in check_architecture(analyze(late_pool, 28))
    )


@pytest.fixture
def run_inspect(tiny_data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    """Runs `python -m src.inspect <overrides>` on small data, its pictures under tmp_path: its
    main (the Hydra app on these overrides in place of the command line), in this process (which
    saves the interpreter's start-up, 6 s a call here)."""

    def run(*overrides: str) -> SimpleNamespace:
        local = [f"data.data_dir={tiny_data_dir}", "data.offline_dir=null", "data.val_size=100",
                 f"paths.log_dir={tmp_path}/logs"]  # fmt: skip
        code, out, err = in_process(capsys, lambda: inspect_main([*local, *overrides]))
        return SimpleNamespace(returncode=code, stdout=out, stderr=err)

    return run


def test_inspect_prints_the_tutorial_table(run_inspect) -> None:
    result = run_inspect("model=tutorial")
    assert result.returncode == 0, result.stderr
    for expected in ["conv7", "3x3x1024", "40x40 (conv7)", "6,379,786", "4,719,616", "158,980,608"]:
        assert expected in result.stdout
    assert "warning" not in result.stdout


@pytest.mark.slow  # the command in a process of its own (in this one: the tests below)
def test_inspect_runs_as_a_command(tiny_data_dir: Path, tmp_path: Path) -> None:
    # the other inspect tests call its main in this process; this one runs the command itself
    result = subprocess.run(
        [sys.executable, "-m", "src.inspect", "model=tutorial", f"data.data_dir={tiny_data_dir}",
         "data.offline_dir=null", "data.val_size=100", f"paths.log_dir={tmp_path}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "6,379,786" in result.stdout and (tmp_path / "inspect" / "pooling.png").is_file()


def test_inspect_stages_the_data_on_a_fresh_clone(
    run_inspect, offline_dir: Path, tmp_path: Path
) -> None:
    # a fresh clone has no data/ yet: inspect stages MNIST before reading its probe digit
    fresh = tmp_path / "fresh_data"
    result = run_inspect(f"data.data_dir={fresh}", f"data.offline_dir={offline_dir}")
    assert result.returncode == 0, result.stderr
    assert (fresh / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file()
    assert (tmp_path / "logs" / "inspect" / "receptive_field.png").is_file()


def test_inspect_warns_when_the_last_layer_cannot_see_the_digit(run_inspect) -> None:
    result = run_inspect("model.channels=[8,16]")
    assert result.returncode == 0, result.stderr
    assert "warning: the receptive field of conv2 is 5x5" in " ".join(result.stdout.split())


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.channels=[]", "error: model.channels=[]: must be a non-empty list"),
        ("model.channels=[16,0]", "error: model.channels=[16, 0]: must be a non-empty list of"),
        ("model.channels=[16,a]", "error: model.channels[1]='a': must be an integer"),
        ("model.valid_tail=12", "error: model.valid_tail=12: must be between 0 and 6"),
        ("model.dropout=1.5", "error: model.dropout=1.5: must be a rate in [0, 1)"),
        ("model.kernels=[3,1]", "error: model.kernels=[3, 1]: must list one odd kernel size per"),
    ],
)
def test_inspect_errors_are_one_line(run_inspect, override: str, message: str) -> None:
    result = run_inspect(override)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.stderr


def test_inspect_draws_the_receptive_fields_and_repeated_pooling(
    run_inspect, tmp_path: Path
) -> None:
    result = run_inspect("model.channels=[8,16,16]")
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "logs" / "inspect"
    for name in ("receptive_field.png", "pooling.png"):
        pixels = np.asarray(Image.open(folder / name).convert("RGB"))
        assert pixels.shape[1] == 440 and pixels.std() > 20, name  # drawn, not blank
    assert f"wrote {folder / 'receptive_field.png'}" in " ".join(result.stdout.split())


def test_receptive_field_boxes_by_hand() -> None:
    # conv 3x3 p1 -> conv 3x3 p1 -> max-pool 2x2 -> conv 3x3 p0, on 8x8
    stack = [conv("c1", 1, 1, padding=1), conv("c2", 1, 1, padding=1), maxpool("p", 1),
             conv("c3", 1, 1, padding=0)]  # fmt: skip
    stats = analyze(stack, 8)
    # c1: unit 0 centred on pixel 0 (edges 0..1, centre 0.5), sees 3: [-1, 2]
    assert receptive_field_box(stats[0], 0) == (-1.0, 2.0)
    assert receptive_field_box(stats[0], 3) == (2.0, 5.0)
    assert receptive_field_box(stats[1], 0) == (-2.0, 3.0)  # 5 wide
    # the pool's unit 0 covers c2's units 0 and 1: [-2, 3] and [-1, 4] -> [-2, 4]
    assert receptive_field_box(stats[2], 0) == (-2.0, 4.0)
    assert receptive_field_box(stats[2], 1) == (0.0, 6.0)  # jump 2
    # c3 (no padding): unit 0 covers pool units 0..2: [-2, 4] .. [2, 8] -> [-2, 8]
    assert receptive_field_box(stats[3], 0) == (-2.0, 8.0)
    windows = unit_windows(stats)
    assert [w[0] for w in windows] == ["c1", "c2", "p", "c3"]
    assert windows[3] == ("c3", 2, (-2.0, 8.0), (-2.0, 8.0))  # 2x2 output: centre unit 0


@pytest.mark.parametrize(
    ("pools", "after", "field"),
    [([], [], 13), ([1, 2], ["conv1", "conv2"], 42), ([2, 4], ["conv2", "conv4"], 32),
     ([4, 5], ["conv4", "conv5"], 24)],
)  # fmt: skip
def test_pools_put_the_max_pools_after_the_convs_named(pools, after, field) -> None:
    specs = plan_layers([8, 8, 16, 16, 32, 32], pools=pools, batch_norm=True)  # as configured
    names = [s.name for s in specs]
    placed = [names[i - 1] for i, s in enumerate(specs) if s.kind == "maxpool"]
    assert placed == [f"relu{a[4:]}" for a in after]  # each pool right after its conv's ReLU
    stats = analyze(specs, 28)
    assert totals(stats)["receptive_field"] == field
    assert totals(stats)["params"] == 18_482  # pools cost nothing: like is compared with like


def test_a_pool_that_would_leave_too_small_a_map_is_refused() -> None:
    message = "model.pools=[1, 2, 3]: a pool after conv3 would leave a 3x3 map"
    with pytest.raises(ConfigError, match=re.escape(message)):
        plan_layers([8, 8, 16, 16, 32, 32], pools=[1, 2, 3])
