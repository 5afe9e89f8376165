"""The seed's PyTorch GPT-2 training program (build-nanogpt, the lecture's second half), the peer
that gpt2c's CUDA backend is to be measured against on the same GPU.

As the seed has it: bf16 autocast around forward and loss, TF32 for what stays fp32
(torch.set_float32_matmul_precision("high")), F.scaled_dot_product_attention (flash attention),
torch.compile, fused AdamW (betas 0.9/0.95, eps 1e-8, decay 0.1 on 2-D tensors only), global norm
clipping at 1.0, vocabulary padded to 50304, gradient accumulation to the total batch, the LM head
tied to wte, GPT-2's init. Data: llm.c shards read as DataLoaderLite does (random tokens with
--synthetic, which changes nothing in the timing).

It prints one JSON line: tokens/s (median step over the steps after --warmup), MFU against the
GPU's dense bf16 peak (--peak-tflops, default 989.4 for an H100 SXM), the peak memory
(torch.cuda.max_memory_allocated) and the settings.

  python3 bench/torch_gpt2_gpu.py --model d12 --micro-batch 64 --seq-len 1024 \\
      --total-batch 524288 --steps 20 --synthetic            # on the device
  python3 bench/torch_gpt2_gpu.py --device cpu --model d2 --micro-batch 2 --seq-len 64 \\
      --total-batch 256 --steps 3 --synthetic --no-compile    # a smoke run anywhere

Not yet run on a GPU by this project (the CUDA issue's session had no device): its numbers go to
bench/results/ once it has.
"""
import argparse
import json
import math
import statistics
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

PRESETS = {"d2": (2, 2, 128), "d4": (4, 4, 256), "d6": (6, 6, 384), "d12": (12, 12, 768),
           "d24": (24, 16, 1024), "d36": (36, 20, 1280), "d48": (48, 25, 1600)}
VOCAB = 50304  # 50257 padded to a multiple of 128, as the seed does


class Block(nn.Module):
    def __init__(self, C, NH, L):
        super().__init__()
        self.NH = NH
        self.ln_1, self.ln_2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.c_attn, self.attn_proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
        self.c_fc, self.mlp_proj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)
        for proj in (self.attn_proj, self.mlp_proj):  # residual projections: 0.02 / sqrt(2L)
            proj.RESIDUAL_SCALE = True

    def attention(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.NH, C // self.NH).transpose(1, 2) for t in (q, k, v))
        if hasattr(F, "scaled_dot_product_attention"):
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # torch < 2.0 (the CPU smoke run on Debian's torch 1.13)
            att = (q @ k.transpose(-2, -1)) / math.sqrt(k.size(-1))
            att = att.masked_fill(torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1), float("-inf"))
            y = att.softmax(-1) @ v
        return self.attn_proj(y.transpose(1, 2).contiguous().view(B, T, C))

    def forward(self, x):
        x = x + self.attention(self.ln_1(x))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, L, NH, C, T):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(VOCAB, C), nn.Embedding(T, C)
        self.h = nn.ModuleList(Block(C, NH, L) for _ in range(L))
        self.ln_f = nn.LayerNorm(C)
        self.lm_head = nn.Linear(C, VOCAB, bias=False)
        self.lm_head.weight = self.wte.weight  # tied
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                std = 0.02 / math.sqrt(2 * L) if getattr(m, "RESIDUAL_SCALE", False) else 0.02
                nn.init.normal_(m.weight, 0.0, std)
                if getattr(m, "bias", None) is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, idx, targets):
        B, T = idx.shape
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, VOCAB).float(), targets.view(-1))


def batches(args, device):
    """DataLoaderLite over one llm.c shard (header of 256 int32, then uint16 tokens), or random."""
    B, T = args.micro_batch, args.seq_len
    if args.synthetic:
        g = torch.Generator().manual_seed(0)
        while True:
            xy = torch.randint(0, 50257, (B * T + 1,), generator=g)
            yield xy[:-1].view(B, T).to(device), xy[1:].view(B, T).to(device)
    tokens = torch.from_numpy(np.fromfile(args.data, dtype=np.uint16, offset=1024).astype(np.int64))
    pos = 0
    while True:
        if pos + B * T + 1 > len(tokens):
            pos = 0
        xy = tokens[pos:pos + B * T + 1]
        pos += B * T
        yield xy[:-1].view(B, T).to(device), xy[1:].view(B, T).to(device)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="d12", choices=PRESETS)
    ap.add_argument("--micro-batch", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=1024)
    ap.add_argument("--total-batch", type=int, default=524288)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3, help="steps left out of the median (compile)")
    ap.add_argument("--data", help="an llm.c train shard")
    ap.add_argument("--synthetic", action="store_true", help="random tokens instead of --data")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--peak-tflops", type=float, default=989.4, help="dense bf16 peak for MFU")
    args = ap.parse_args()
    if not args.synthetic and not args.data:
        ap.error("--data SHARD or --synthetic")
    if args.total_batch % (args.micro_batch * args.seq_len):
        ap.error("--total-batch must be a multiple of micro-batch x seq-len")
    accum = args.total_batch // (args.micro_batch * args.seq_len)
    device = torch.device(args.device)
    torch.manual_seed(1337)
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")  # TF32
    L, NH, C = PRESETS[args.model]
    model = GPT(L, NH, C, args.seq_len).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": 0.1},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    fused = device.type == "cuda"
    opt = torch.optim.AdamW(groups, lr=6e-4, betas=(0.9, 0.95), eps=1e-8, **({"fused": True} if fused else {}))
    step_model = model if args.no_compile else torch.compile(model)
    data = batches(args, device)
    autocast_dtype = torch.bfloat16
    times, losses = [], []
    for step in range(args.steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss_sum = 0.0
        for _ in range(accum):
            x, y = next(data)
            with torch.autocast(device_type=device.type, dtype=autocast_dtype):
                loss = step_model(x, y) / accum
            loss_sum += loss.detach()
            loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        losses.append(float(loss_sum))
        if not math.isfinite(losses[-1]) or not math.isfinite(float(norm)):
            raise SystemExit(f"step {step}: loss {losses[-1]}, norm {float(norm)}")
    timed = times[args.warmup:] or times
    dt = statistics.median(timed)
    n_params = sum(p.numel() for p in params) - model.wpe.weight.numel()
    flops_per_token = 6 * n_params + 6 * L * C * (args.seq_len + 1)  # causal attention, as train_bench.py
    tok_s = args.total_batch / dt
    print(json.dumps({
        "model": args.model, "micro_batch": args.micro_batch, "seq_len": args.seq_len,
        "total_batch": args.total_batch, "accum": accum, "steps": args.steps, "device": str(device),
        "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None,
        "torch": torch.__version__, "compile": not args.no_compile,
        "step_s_median": dt, "tok_s": tok_s,
        "mfu": tok_s * flops_per_token / (args.peak_tflops * 1e12),
        "peak_mem_gb": torch.cuda.max_memory_allocated() / 1e9 if device.type == "cuda" else None,
        "losses": losses}))


if __name__ == "__main__":
    main()
