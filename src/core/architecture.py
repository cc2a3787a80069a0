"""Architecture arithmetic, in plain Python: which layers a channel list makes, and what each does
to the feature map's size, the receptive field, the parameter count and the work (MACs).

The layout rule that turns `channels` into layers (the tutorial's rules, written down):

* every entry of `channels` is a 3x3 conv followed by a ReLU (with `batch_norm`, conv -> batch
  norm -> ReLU, and the conv has no bias, which the norm would cancel; with `dropout` > 0, a
  dropout layer with that rate follows each of these ReLUs); a final conv maps the
  last channel count to the 10 class logits, with no ReLU after it (`final_relu` puts the
  tutorial's one back);
* `kernels`, one per entry of `channels`, changes an entry's kernel size from 3: a 1 makes a 1x1
  conv, a transition that mixes (usually fewer) channels per pixel without growing the
  receptive field, so that the next 3x3 conv costs fewer parameters;
* convs keep the map's size (padding kernel // 2), except the last `valid_tail` convs, which use
  no padding and so shrink the map by kernel - 1 each (2 for a 3x3: the tutorial's way of
  reaching 1x1 without an FC layer);
* a 2x2 max-pool follows every `pool_every`-th conv (or the convs `pools` lists, counted from 1),
  unless fewer than two convs would follow it (max-pooling never sits near the output) or it
  would make the map smaller than 7x7;
* `head="conv"`: the logits conv is a 3x3 conv that must leave a 1x1 map (the tutorial's head);
  `head="gap"`: global average pooling, then a 1x1 conv to the logits, for any map size.

Receptive field recurrence (per layer with kernel k, stride s, padding p, dilation d):
    k_eff = d*(k-1) + 1,  r_out = r_in + (k_eff-1)*j_in,  j_out = j_in*s,
    start_out = start_in + ((k_eff-1)/2 - p)*j_in,  n_out = floor((n_in + 2p - k_eff)/s) + 1
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from src.core.errors import ConfigError

HEADS = ("gap", "conv")
MIN_POOLED_SIZE = 7  # MNIST strokes need a few pixels each; the tutorial stops pooling at 7x7


@dataclass(frozen=True)
class Layer:
    """One layer as the arithmetic sees it. `kind` is conv, batchnorm, relu, dropout, maxpool or
    gap; `rate` is a dropout layer's drop probability."""

    kind: str
    name: str
    in_channels: int
    out_channels: int
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    dilation: int = 1
    bias: bool = True
    rate: float = 0.0


@dataclass(frozen=True)
class LayerStats:
    """What one layer does to a square input: sizes, receptive field and cost."""

    layer: Layer
    in_size: int
    out_size: int
    receptive_field: int
    jump: int
    start: float
    weights: int
    biases: int
    macs: int

    @property
    def params(self) -> int:
        return self.weights + self.biases


def conv(name: str, c_in: int, c_out: int, kernel: int = 3, padding: int = 0, **kw) -> Layer:
    return Layer("conv", name, c_in, c_out, kernel=kernel, padding=padding, **kw)


def maxpool(name: str, channels: int, kernel: int = 2, stride: int = 2) -> Layer:
    return Layer("maxpool", name, channels, channels, kernel=kernel, stride=stride, bias=False)


def batchnorm(name: str, channels: int) -> Layer:
    return Layer("batchnorm", name, channels, channels)


def relu(name: str, channels: int) -> Layer:
    return Layer("relu", name, channels, channels, bias=False)


def drop(name: str, channels: int, rate: float) -> Layer:
    return Layer("dropout", name, channels, channels, bias=False, rate=rate)


def gap(name: str, channels: int) -> Layer:
    return Layer("gap", name, channels, channels, bias=False)


def padded_convs(n_channels: int, head: str) -> int:
    """How many convs may keep their size (padding 1): the 3x3 ones, the head's too if a conv."""
    return n_channels + (head == "conv")


def plan_layers(
    channels: Sequence[int],
    *,
    pool_every: int = 2,
    pools: Sequence[int] | None = None,
    valid_tail: int = 0,
    kernels: Sequence[int] | None = None,
    head: str = "gap",
    batch_norm: bool = False,
    dropout: float = 0.0,
    final_relu: bool = False,
    in_channels: int = 1,
    num_classes: int = 10,
    input_size: int = 28,
) -> list[Layer]:
    """The layers the layout rule (module docstring) makes from a channel list, for options in
    their ranges (src/config/rules.py checks a config's); a pool or a head that the sizes do not
    allow is a ConfigError."""
    n_convs = len(channels) + 1
    n_3x3 = padded_convs(len(channels), head)
    kernels = kernels or [3] * len(channels)

    layers: list[Layer] = []
    size, c_prev, n_pools = input_size, in_channels, 0
    for i, c_out in enumerate(channels, start=1):
        kernel = kernels[i - 1]
        padding = 0 if i > n_3x3 - valid_tail else kernel // 2
        layers.append(conv(f"conv{i}", c_prev, c_out, kernel, padding, bias=not batch_norm))
        if batch_norm:
            layers.append(batchnorm(f"bn{i}", c_out))
        layers.append(relu(f"relu{i}", c_out))
        if dropout > 0:
            layers.append(drop(f"drop{i}", c_out, dropout))
        size += 2 * padding - (kernel - 1)
        convs_after = n_convs - i
        wanted = i in pools if pools is not None else i % pool_every == 0
        if wanted and pools is not None and size // 2 < MIN_POOLED_SIZE:
            raise ConfigError(
                f"model.pools={list(pools)}: a pool after conv{i} would leave a {size // 2}x"
                f"{size // 2} map, smaller than {MIN_POOLED_SIZE}x{MIN_POOLED_SIZE}"
            )
        if wanted and convs_after >= 2 and size // 2 >= MIN_POOLED_SIZE:
            n_pools += 1
            layers.append(maxpool(f"pool{n_pools}", c_out))
            size //= 2
        c_prev = c_out

    logits = f"conv{n_convs}"
    if head == "gap":
        layers += [gap("gap", c_prev), conv(logits, c_prev, num_classes, kernel=1)]
    else:
        padding = 0 if valid_tail else 1
        layers.append(conv(logits, c_prev, num_classes, 3, padding))
    if final_relu:
        layers.append(relu(f"relu{n_convs}", num_classes))

    out_size = analyze(layers, input_size)[-1].out_size
    if out_size != 1:
        raise ConfigError(
            f"model.head=conv needs a 1x1 map after {logits}, but model.channels={channels} "
            f"with model.valid_tail={valid_tail} leaves {out_size}x{out_size}: "
            "use model.head=gap or change model.valid_tail"
        )
    return layers


def analyze(layers: Sequence[Layer], input_size: int) -> list[LayerStats]:
    """Per-layer sizes, receptive field, jump, start, params and MACs for a square input."""
    rows: list[LayerStats] = []
    size, rf, jump, start = input_size, 1, 1, 0.5
    for layer in layers:
        kernel, stride, padding = layer.kernel, layer.stride, layer.padding
        if layer.kind == "gap":
            kernel, stride, padding = size, 1, 0
        k_eff = layer.dilation * (kernel - 1) + 1
        out = (size + 2 * padding - k_eff) // stride + 1
        if out < 1:
            raise ConfigError(
                f"layer {layer.name} ({layer.kind} {kernel}x{kernel}) gets a {size}x{size} map "
                "and would shrink it below 1x1: use fewer layers, more padding or fewer pools"
            )
        weights = biases = macs = 0
        if layer.kind == "conv":
            weights = layer.out_channels * layer.in_channels * layer.kernel**2
            biases = layer.out_channels if layer.bias else 0
            macs = weights * out * out
        elif layer.kind == "batchnorm":
            weights = biases = layer.out_channels  # scale and shift; running stats are buffers
        rows.append(
            LayerStats(
                layer=layer,
                in_size=size,
                out_size=out,
                receptive_field=rf + (k_eff - 1) * jump,
                jump=jump * stride,
                start=start + ((k_eff - 1) / 2 - padding) * jump,
                weights=weights,
                biases=biases,
                macs=macs,
            )
        )
        size, rf, jump, start = out, rows[-1].receptive_field, rows[-1].jump, rows[-1].start
    return rows


def receptive_field_box(row: LayerStats, unit: int) -> tuple[float, float]:
    """The input window, (first edge, last edge) in pixel-edge coordinates (pixel i spans
    [i, i + 1]), that unit `unit` of the layer's output sees along one axis: centred on
    start + unit * jump, receptive_field wide. Parts outside [0, input size] lie on padding."""
    centre = row.start + unit * row.jump
    return centre - row.receptive_field / 2, centre + row.receptive_field / 2


def unit_windows(
    stats: Sequence[LayerStats],
) -> list[tuple[str, int, tuple[float, float], tuple[float, float]]]:
    """For each conv and max-pool before any global pooling: (name, output size, the centre
    unit's window, the corner unit's window), as `receptive_field_box` gives them."""
    windows = []
    for row in stats:
        if row.layer.kind == "gap":
            break
        if row.layer.kind in ("conv", "maxpool"):
            centre = receptive_field_box(row, (row.out_size - 1) // 2)
            windows.append((row.layer.name, row.out_size, centre, receptive_field_box(row, 0)))
    return windows


def final_receptive_field(stats: Sequence[LayerStats]) -> LayerStats:
    """The last conv or pool before any global pooling: its units see the largest window of the
    input that any spatial feature sees (ReLU and batch norm leave the window as it is)."""
    before_gap = []
    for row in stats:
        if row.layer.kind == "gap":
            break
        before_gap.append(row)
    return next(r for r in reversed(before_gap) if r.layer.kind in ("conv", "maxpool"))


def check_architecture(stats: Sequence[LayerStats]) -> list[str]:
    """Warnings about a layout the tutorial argues against; empty when it is sound."""
    found = []
    input_size = stats[0].in_size
    last = final_receptive_field(stats)
    if last.receptive_field < input_size:
        found.append(
            f"the receptive field of {last.layer.name} is {last.receptive_field}x"
            f"{last.receptive_field}, smaller than the {input_size}x{input_size} input: the last "
            "layer never sees the whole digit (add convs, or pools earlier on)"
        )
    convs = [i for i, row in enumerate(stats) if row.layer.kind == "conv"]
    if len(convs) >= 2:
        for row in stats[convs[-2] :]:
            if row.layer.kind == "maxpool":
                found.append(
                    f"{row.layer.name} is a max-pool within the last two conv layers: pooling "
                    "this close to the output throws away detail the classifier needs"
                )
    if stats[-1].layer.kind == "relu":
        found.append(
            f"{stats[-1].layer.name} is a ReLU on the logits: it clamps negative scores to 0, so "
            "wrong classes cannot be pushed down and those units stop learning"
        )
    return found


TABLE_HEADER = (
    "layer",
    "object size",
    "kernel",
    "output size",
    "receptive field",
    "jump",
    "weights",
    "biases",
    "params",
    "MACs",
)


def table_rows(stats: Sequence[LayerStats]) -> list[tuple[str, ...]]:
    """One row per layer that changes something (ReLUs and dropout are left out), then the
    totals."""
    rows = []
    for row in stats:
        layer = row.layer
        if layer.kind in ("relu", "dropout"):
            continue
        kernel = {
            "conv": f"{layer.kernel}x{layer.kernel}x{layer.in_channels} x{layer.out_channels}"
            + f" p{layer.padding}",
            "maxpool": f"max {layer.kernel}x{layer.kernel} /{layer.stride}",
            "batchnorm": "batch norm",
            "gap": f"avg {row.in_size}x{row.in_size}",
        }[layer.kind]
        rows.append(
            (
                layer.name,
                f"{row.in_size}x{row.in_size}x{layer.in_channels}",
                kernel,
                f"{row.out_size}x{row.out_size}x{layer.out_channels}",
                f"{row.receptive_field}x{row.receptive_field}",
                str(row.jump),
                f"{row.weights:,}",
                f"{row.biases:,}",
                f"{row.params:,}",
                f"{row.macs:,}",
            )
        )
    total = totals(stats)
    rf = f"{total['receptive_field']}x{total['receptive_field']} ({total['receptive_field_of']})"
    counts = [f"{total[key]:,}" for key in ("weights", "biases", "params", "macs")]
    rows.append(("total", "", "", "", rf, "", *counts))
    return rows


def totals(stats: Sequence[LayerStats]) -> dict[str, int | str]:
    """Whole-net figures: weights, biases, params, MACs and the final receptive field."""
    weights, biases = sum(r.weights for r in stats), sum(r.biases for r in stats)
    last = final_receptive_field(stats)
    return {
        "weights": weights,
        "biases": biases,
        "params": weights + biases,
        "macs": sum(r.macs for r in stats),
        "receptive_field": last.receptive_field,
        "receptive_field_of": last.layer.name,
    }


def markdown_table(stats: Sequence[LayerStats]) -> str:
    """The architecture table as Markdown, with any warnings below it."""
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|" + "---|" * len(TABLE_HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(stats)]
    lines += [f"\n**warning**: {warning}" for warning in check_architecture(stats)]
    return "\n".join(lines) + "\n"
