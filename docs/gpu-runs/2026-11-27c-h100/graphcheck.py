"""Scratch (device call 1): the CUDA-graph step against the eager one, same start, same batches."""
import json, time, torch
from src.module import MNISTClassifier

kw = dict(optimizer={"name": "adam", "lr": 0.02}, scheduler={"name": "none"},
          channels=[16, 16, 32, 32, 64, 64], head="gap", batch_norm=True)
torch.manual_seed(0)
eager = MNISTClassifier(**kw).cuda().train()
graphed = MNISTClassifier(compile=True, compile_mode="cuda-graphs", **kw).cuda().train()
graphed.load_state_dict(eager.state_dict())
opts = [torch.optim.Adam(m.parameters(), lr=0.02) for m in (eager, graphed)]
g = torch.Generator(device="cuda").manual_seed(1)
report = {"loss_diff": [], "events": []}
def step(i, n):
    x = torch.randn(n, 1, 28, 28, device="cuda", generator=g)
    y = torch.randint(0, 10, (n,), device="cuda", generator=g)
    losses = []
    for m, o in zip((eager, graphed), opts):
        loss, _, _ = m.step((x, y))
        o.zero_grad(); loss.backward(); o.step()
        losses.append(float(loss))
    report["loss_diff"].append([i, n, losses[0], losses[1]])
t = time.perf_counter(); step(0, 128); torch.cuda.synchronize()
report["first_step_s_incl_record"] = time.perf_counter() - t
bn = [b for b in graphed.net.buffers()]
for i in range(1, 30):
    step(i, 100 if i == 10 else 128)
report["recorded_shape"] = list(graphed.training_graphs.shape)
eager.cpu().cuda(); graphed.cpu().cuda()  # moved: graphs must be recorded again
opts = [torch.optim.Adam(m.parameters(), lr=0.02) for m in (eager, graphed)]
ptr = graphed.training_graphs.first_parameter
for i in range(30, 40):
    step(i, 128)
report["re_recorded"] = ptr != graphed.training_graphs.first_parameter
pe = dict(eager.named_parameters()); pg = dict(graphed.named_parameters())
report["param_max_abs_diff"] = max(float((pe[k] - pg[k]).abs().max()) for k in pe)
be = dict(eager.named_buffers()); bg = dict(graphed.named_buffers())
report["buffer_max_abs_diff"] = {k: float((be[k].float() - bg[k].float()).abs().max()) for k in be if "running" in k or "num_batches" in k}
report["buffer_max_abs_diff"] = max(report["buffer_max_abs_diff"].values())
report["nbt"] = [int(v) for k, v in bg.items() if "num_batches" in k][:1] + [int(v) for k, v in be.items() if "num_batches" in k][:1]
eager.eval(); graphed.eval()
with torch.no_grad():
    x = torch.randn(256, 1, 28, 28, device="cuda", generator=g)
    report["eval_max_abs_diff"] = float((eager(x) - graphed(x)).abs().max())
# per-step time, bare loop of each, 200 steps after 20
for name, m, o in (("eager", eager, opts[0]), ("graphed", graphed, opts[1])):
    m.train(); x = torch.randn(128, 1, 28, 28, device="cuda"); y = torch.randint(0, 10, (128,), device="cuda")
    for i in range(220):
        if i == 20: torch.cuda.synchronize(); t = time.perf_counter()
        loss, _, _ = m.step((x, y)); o.zero_grad(); loss.backward(); o.step()
    torch.cuda.synchronize(); report[f"{name}_ms_per_step_b128"] = (time.perf_counter() - t) / 200 * 1000
print(json.dumps(report, indent=1))
