"""A small, readable GPT-2 in PyTorch: the reference that gpt2c's training is compared with.

Parameters carry the Hugging Face GPT-2 names without prefix (`wte.weight`, `h.0.attn.c_attn.weight`,
...), with Conv1D weights stored [in, out] as in Hugging Face, so a state dict is a Hugging Face GPT-2
checkpoint. The LM head is tied to `wte`. The recipe (`train`) is build-nanogpt's: DataLoaderLite,
AdamW with decay on 2-D tensors only, warmup + cosine LR, gradient accumulation, global norm clipping,
validation before the step's update.
"""
import json
import math
import struct
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

VOCAB = 50257
SHARD_MAGIC = 20240520
SHARD_VERSION = 1


class Config:
    def __init__(self, n_layer, n_head, n_embd, n_positions=1024):
        assert n_embd % n_head == 0
        self.n_layer, self.n_head, self.n_embd, self.n_positions = n_layer, n_head, n_embd, n_positions

    def __repr__(self):
        return "Config(n_layer=%d, n_head=%d, n_embd=%d, n_positions=%d)" % (
            self.n_layer, self.n_head, self.n_embd, self.n_positions)


class Conv1D(nn.Module):
    """Hugging Face's Conv1D: a linear layer whose weight is stored [in, out]; y = x @ W + b."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x):
        return x @ self.weight + self.bias


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.n_head = cfg.n_head
        self.c_attn = Conv1D(cfg.n_embd, 3 * cfg.n_embd)  # fused q, k, v
        self.c_proj = Conv1D(cfg.n_embd, cfg.n_embd)

    def forward(self, x):
        B, T, C = x.shape
        hs = C // self.n_head
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, hs).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))  # (B, nh, T, T)
        causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        att = att.masked_fill(~causal, float("-inf"))
        att = F.softmax(att, dim=-1, dtype=torch.promote_types(att.dtype, torch.float32)).to(v.dtype)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.c_fc = Conv1D(cfg.n_embd, 4 * cfg.n_embd)
        self.c_proj = Conv1D(4 * cfg.n_embd, cfg.n_embd)

    def forward(self, x):
        return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, eps=1e-5)
        self.attn = Attention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, eps=1e-5)
        self.mlp = MLP(cfg)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT2(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(VOCAB, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.n_positions, cfg.n_embd)
        self.h = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, eps=1e-5)

    def hidden(self, idx):
        """idx (B, T) int64 -> the final LayerNorm's output (B, T, n_embd), the LM head's input."""
        B, T = idx.shape
        assert T <= self.cfg.n_positions
        pos = torch.arange(T, device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.h:
            x = block(x)
        return self.ln_f(x)

    def forward(self, idx, targets=None):
        """idx (B, T) int64 -> logits (B, T, 50257); with targets also the mean cross-entropy."""
        logits = self.hidden(idx) @ self.wte.weight.t()  # LM head tied to wte
        if targets is None:
            return logits
        loss = F.cross_entropy(logits.reshape(-1, VOCAB).to(torch.promote_types(logits.dtype, torch.float32)),
                               targets.reshape(-1))
        return logits, loss


# ---------------------------------------------------------------------------------------------
# Initialisation and the Hugging Face directory

def random_init(cfg, seed, noisy=False):
    """GPT-2 init: normal(0, 0.02) for embeddings and matmul weights, 0.02/sqrt(2*n_layer) for the
    attention output and MLP down projections, biases 0, LayerNorm 1/0. With noisy=True biases and
    LayerNorm parameters are random too, so that a comparison exercises every parameter."""
    g = torch.Generator().manual_seed(seed)
    model = GPT2(cfg)
    proj_std = 0.02 / math.sqrt(2 * cfg.n_layer)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("c_proj.weight"):
                p.normal_(0.0, proj_std, generator=g)
            elif p.dim() == 2:
                p.normal_(0.0, 0.02, generator=g)
            elif ".ln_" in name or name.startswith("ln_f"):
                is_weight = name.endswith(".weight")
                p.fill_(1.0 if is_weight else 0.0)
                if noisy:
                    p.add_(torch.randn(p.shape, generator=g) * (0.1 if is_weight else 0.05))
            else:  # a bias of a linear layer
                p.zero_()
                if noisy:
                    p.normal_(0.0, 0.05, generator=g)
    return model


def hf_config_dict(cfg):
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "activation_function": "gelu_new",
        "n_layer": cfg.n_layer,
        "n_head": cfg.n_head,
        "n_embd": cfg.n_embd,
        "n_positions": cfg.n_positions,
        "n_ctx": cfg.n_positions,
        "vocab_size": VOCAB,
        "layer_norm_epsilon": 1e-5,
        "bos_token_id": 50256,
        "eos_token_id": 50256,
    }


def save_hf_dir(model, directory, dtype=torch.float32):
    """Write config.json and model.safetensors (unprefixed Hugging Face names, in dtype)."""
    from safetensors.torch import save_file
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(hf_config_dict(model.cfg), indent=2) + "\n")
    tensors = {name: p.detach().to(dtype).contiguous().clone() for name, p in model.named_parameters()}
    save_file(tensors, str(directory / "model.safetensors"), metadata={"format": "pt"})


def read_safetensors(path):
    """name -> float32 tensor, for fp32/fp16/bf16 files; the Hugging Face "transformer." prefix,
    the tied lm_head and the attention mask buffers of old checkpoints are dropped."""
    from safetensors.torch import load_file
    out = {}
    for name, t in load_file(str(path)).items():
        if name.startswith("transformer."):
            name = name[len("transformer."):]
        if name == "lm_head.weight" or name.endswith(".attn.bias") or name.endswith(".attn.masked_bias"):
            continue
        assert t.dtype in (torch.float32, torch.float16, torch.bfloat16), (name, t.dtype)
        out[name] = t.float()
    return out


def load_hf_dir(directory):
    directory = Path(directory)
    conf = json.loads((directory / "config.json").read_text())
    assert conf.get("model_type", "gpt2") == "gpt2"
    assert conf.get("vocab_size", VOCAB) == VOCAB
    cfg = Config(conf["n_layer"], conf["n_head"], conf["n_embd"], conf.get("n_positions", conf.get("n_ctx")))
    model = GPT2(cfg)
    model.load_state_dict(read_safetensors(directory / "model.safetensors"), strict=True)
    return model


# ---------------------------------------------------------------------------------------------
# Data: llm.c shards and build-nanogpt's DataLoaderLite

def write_shard(path, tokens):
    """llm.c's token shard: 256 little-endian int32 (magic, version, count, zeros), then uint16."""
    tokens = np.asarray(tokens, dtype=np.int64)
    assert tokens.min() >= 0 and tokens.max() < 2 ** 16
    header = np.zeros(256, dtype="<i4")
    header[:3] = (SHARD_MAGIC, SHARD_VERSION, len(tokens))
    Path(path).write_bytes(header.tobytes() + tokens.astype("<u2").tobytes())


def read_shard(path):
    data = Path(path).read_bytes()
    magic, version, count = struct.unpack_from("<3i", data)
    assert magic == SHARD_MAGIC and version == SHARD_VERSION and len(data) == 1024 + 2 * count
    return np.frombuffer(data, dtype="<u2", offset=1024).astype(np.int64)


class DataLoaderLite:
    """build-nanogpt's loader, single process: a batch is the next B*T+1 tokens (x = buf[:-1],
    y = buf[1:]); the position advances by B*T; when the next batch would not fit, the next shard
    (after the last, the first again) from position 0."""

    def __init__(self, B, T, shard_paths):
        assert shard_paths
        self.B, self.T, self.shards = B, T, [str(p) for p in shard_paths]
        self.reset()

    def reset(self):
        self.current_shard = 0
        self.tokens = torch.from_numpy(read_shard(self.shards[0]))
        self.current_position = 0

    def next_batch(self):
        B, T = self.B, self.T
        buf = self.tokens[self.current_position:self.current_position + B * T + 1]
        x, y = buf[:-1].view(B, T), buf[1:].view(B, T)
        self.current_position += B * T
        if self.current_position + B * T + 1 > len(self.tokens):
            self.current_shard = (self.current_shard + 1) % len(self.shards)
            self.tokens = torch.from_numpy(read_shard(self.shards[self.current_shard]))
            self.current_position = 0
        return x, y


# ---------------------------------------------------------------------------------------------
# The recipe

class TrainArgs:
    """The flags of `gpt2c train` that the recipe uses (same names, same defaults)."""

    def __init__(self, data, val_data=None, batch_size=4, seq_len=64, total_batch_size=None, max_steps=20,
                 warmup_steps=5, lr=6e-4, min_lr_ratio=0.1, beta1=0.9, beta2=0.95, eps=1e-8,
                 weight_decay=0.1, grad_clip=1.0, val_every=0, val_steps=1, skip_steps=(),
                 fault_step=None, fault_scale=1.0):
        self.data, self.val_data = list(data), list(val_data or [])
        self.batch_size, self.seq_len = batch_size, seq_len
        self.total_batch_size = total_batch_size or batch_size * seq_len
        self.max_steps, self.warmup_steps = max_steps, warmup_steps
        self.lr, self.min_lr_ratio = lr, min_lr_ratio
        self.beta1, self.beta2, self.eps, self.weight_decay = beta1, beta2, eps, weight_decay
        self.grad_clip, self.val_every, self.val_steps = grad_clip, val_every, val_steps
        # gpt2c's skipped updates (given, not detected: the test says which steps it expects)
        # and GPT2C_TEST_FAULT's scaling of the first micro-batch of fault_step
        self.skip_steps, self.fault_step, self.fault_scale = set(skip_steps), fault_step, fault_scale


def get_lr(args, it):
    max_lr, min_lr = args.lr, args.lr * args.min_lr_ratio
    W, M = args.warmup_steps, args.max_steps
    if it < W:
        return max_lr * (it + 1) / W
    if it > M:
        return min_lr
    ratio = (it - W) / (M - W)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (max_lr - min_lr)


def evaluate(model, loader, steps):
    """Mean loss over `steps` batches from the start of the loader's data."""
    loader.reset()
    total = 0.0
    with torch.no_grad():
        for _ in range(steps):
            x, y = loader.next_batch()
            total += model(x, y)[1].item()
    return total / steps


def clip_grad_norm(params, clip):
    """The global L2 norm of all gradients (returned, measured before clipping); when clip > 0 and
    norm > clip the gradients are scaled by clip/norm. Like torch.nn.utils.clip_grad_norm_ (which
    divides by norm + 1e-6, a relative difference of 1e-6/norm) but with the norm summed in float64:
    Debian's torch 1.13 computes torch.norm of a 3M-element float32 tensor with a relative error of
    about 1e-4 (its reduction accumulates in float32), far more than the float32 rounding of the
    gradients themselves (about 1e-8), which would make the reference, not the code under test,
    the inexact side."""
    norm = math.sqrt(sum(p.grad.double().pow(2).sum().item() for p in params if p.grad is not None))
    if clip > 0 and norm > clip:
        for p in params:
            if p.grad is not None:
                p.grad.mul_(clip / norm)
    return norm


class Run:
    """The recipe between steps: the model, AdamW, both loaders and the records so far. A copy
    (copy.deepcopy: the copied optimizer holds the copied model's parameters) goes on exactly as
    the original would, so runs that differ only from step k on (a fault or a skipped update
    there) can each start from a copy of one run taken before step k."""

    def __init__(self, model, args):
        B, T = args.batch_size, args.seq_len
        assert args.total_batch_size % (B * T) == 0
        self.model, self.args, self.step, self.records = model, args, 0, []
        self.loader = DataLoaderLite(B, T, args.data)
        self.val_loader = DataLoaderLite(B, T, args.val_data) if args.val_data else None
        params = list(model.parameters())
        groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": args.weight_decay},
                  {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
        self.optimizer = torch.optim.AdamW(groups, lr=args.lr, betas=(args.beta1, args.beta2), eps=args.eps,
                                           foreach=False)

    def run(self, until=None):
        """The steps from here to `until` (not included; None: to the end); returns the records."""
        model, args, optimizer, loader, val_loader = self.model, self.args, self.optimizer, self.loader, self.val_loader
        params = list(model.parameters())
        accum = args.total_batch_size // (args.batch_size * args.seq_len)
        records = self.records
        for step in range(self.step, args.max_steps if until is None else until):
            last = step == args.max_steps - 1
            if val_loader is not None and args.val_every > 0 and (step % args.val_every == 0 or last):
                model.eval()
                records.append({"step": step, "val_loss": evaluate(model, val_loader, args.val_steps)})
            model.train()
            optimizer.zero_grad()
            loss_accum = 0.0
            for micro in range(accum):
                x, y = loader.next_batch()
                _, loss = model(x, y)
                if step == args.fault_step and micro == 0:
                    loss = loss * args.fault_scale
                loss_accum += loss.item() / accum
                (loss / accum).backward()
            norm = clip_grad_norm(params, args.grad_clip)
            lr = get_lr(args, step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            if step not in args.skip_steps:  # a skipped update: no step, AdamW's count unchanged
                optimizer.step()
            records.append({"step": step, "loss": loss_accum, "lr": lr, "norm": norm})
            self.step = step + 1
        return records


def train(model, args):
    """Train in place; returns the log records: {step, loss, lr, norm} for every step and
    {step, val_loss} before the update of every val_every-th step and of the last step."""
    return Run(model, args).run()
