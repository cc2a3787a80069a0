"""Scratch: what a new process pays before its first conv step on the GPU."""
import time; t0 = time.perf_counter()
import torch
t1 = time.perf_counter(); torch.zeros(1, device="cuda"); torch.cuda.synchronize()
t2 = time.perf_counter()
conv = torch.nn.Conv2d(1, 16, 3, padding=1).cuda(); bn = torch.nn.BatchNorm2d(16).cuda()
x = torch.randn(256, 1, 28, 28, device="cuda"); y = bn(conv(x)).sum(); y.backward(); torch.cuda.synchronize()
t3 = time.perf_counter()
w = torch.randn(64, 64, device="cuda"); (w @ w).sum().item()
t4 = time.perf_counter()
print({"import_torch": t1 - t0, "cuda_context": t2 - t1, "first_conv_bn_fwd_bwd": t3 - t2, "first_matmul": t4 - t3})
