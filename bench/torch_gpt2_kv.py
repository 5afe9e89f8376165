"""GPT-2 inference with a KV cache in PyTorch: the reference that `gpt2c sample` is timed against.

The weights are those of tests/torch_gpt2.GPT2 (Hugging Face names, loaded with
tests/torch_gpt2.load_hf_dir). Linear layers, `KVGPT2(model, linear=...)`:
  * "linear" (the default): the Conv1D weights transposed once, at load, to nn.Linear's
    [out, in] and applied with F.linear (x @ W^T + b), as build-nanogpt's GPT.from_pretrained
    does with the Hugging Face checkpoint. The faster of the two with OpenBLAS (its sgemm reads a
    transposed W faster for a few rows of x), and the same BLAS call gpt2c makes.
  * "conv1d": Hugging Face's layout as stored, W [in, out], torch.addmm(b, x, W).
The LM head is tied to wte: logits = F.linear(x, wte) over the 50257 real tokens. float32; call
everything under torch.inference_mode().

KV cache, `KVGPT2.new_cache(batch, max_len, mode=...)`:
  * "prealloc" (the default; the faster of the two for long generations, see
    bench/sample_bench.py --compare): per layer a key and a value tensor of
    (B, n_head, max_len, head_size), allocated and written once (zeros) up front; a step writes
    its keys and values at positions [pos, pos + T) and attends over the view [:, :, :pos + T]
    (no copy: the view is strided and bmm reads it as it is).
  * "concat": the cache grows by torch.cat at every step (Hugging Face's past_key_values before
    its static cache): each step copies the whole cache of every layer once.
Attention is written out (torch 1.13 has no scaled_dot_product_attention): scores = (q * scale)
K^T, masked causally when there is more than one query row (the prompt), softmax, @ V.

The prompt runs once, as a batch of one (`KVGPT2.prefill`); its keys and values are then copied
to every sample (`KVCache.expand_first`), so that a batch of samples starts from one prompt pass,
as in gpt2c. Sampling (`sample_top_k`) is build-nanogpt's: softmax over the vocabulary,
torch.topk(probs, 50), torch.multinomial over the 50, torch.gather of the chosen id.
"""
import math

import torch
import torch.nn.functional as F


class KVCache:
    """Keys and values of every layer for `batch` sequences of up to max_len positions."""

    def __init__(self, n_layer, batch, n_head, max_len, head_size, mode="prealloc"):
        assert mode in ("prealloc", "concat")
        self.mode, self.batch, self.max_len = mode, batch, max_len
        if mode == "prealloc":  # written once here (zeros), like gpt2c's cache at plan time
            shape = (batch, n_head, max_len, head_size)
            self.k = [torch.zeros(shape) for _ in range(n_layer)]
            self.v = [torch.zeros(shape) for _ in range(n_layer)]
        else:
            self.k = [None] * n_layer
            self.v = [None] * n_layer

    def update(self, layer, k, v, pos):
        """Store k, v (b, nh, T, hs) at positions [pos, pos + T) of the first b sequences;
        returns their keys and values of positions [0, pos + T)."""
        b, T = k.size(0), k.size(2)
        assert pos + T <= self.max_len
        if self.mode == "prealloc":
            kc, vc = self.k[layer][:b], self.v[layer][:b]
            kc[:, :, pos:pos + T] = k
            vc[:, :, pos:pos + T] = v
            return kc[:, :, :pos + T], vc[:, :, :pos + T]
        if pos == 0:
            self.k[layer], self.v[layer] = k.contiguous(), v.contiguous()
        else:
            self.k[layer] = torch.cat((self.k[layer], k), dim=2)
            self.v[layer] = torch.cat((self.v[layer], v), dim=2)
        return self.k[layer], self.v[layer]

    def expand_first(self, n_pos):
        """Give every sequence sequence 0's first n_pos positions (the prompt's keys, values)."""
        for kv in (self.k, self.v):
            for layer, t in enumerate(kv):
                if self.mode == "prealloc":
                    t[1:, :, :n_pos] = t[:1, :, :n_pos]
                else:
                    kv[layer] = t.expand(self.batch, -1, -1, -1).contiguous()


class KVGPT2:
    """The inference forward of a tests/torch_gpt2.GPT2 (its parameters are used as they are)."""

    def __init__(self, model, linear="linear"):
        assert linear in ("linear", "conv1d")
        self.linear_mode = linear
        cfg = model.cfg
        self.L, self.NH, self.C, self.max_pos = cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.n_positions
        self.hs = self.C // self.NH
        if linear == "linear":
            self.lin, self.lin_res = F.linear, self._linear_res
        else:
            self.lin, self.lin_res = self._conv1d, self._conv1d_res
        self.scale = 1.0 / math.sqrt(self.hs)
        self.wte, self.wpe = model.wte.weight.detach(), model.wpe.weight.detach()
        self.lnf = (model.ln_f.weight.detach(), model.ln_f.bias.detach())
        self.layers = []
        d = lambda p: p.detach()  # noqa: E731
        # a Conv1D weight [in, out] as F.linear's [out, in] (a copy), or as it is
        w = (lambda p: p.detach().t().contiguous()) if linear == "linear" else d  # noqa: E731
        for b in model.h:
            self.layers.append((
                d(b.ln_1.weight), d(b.ln_1.bias),
                w(b.attn.c_attn.weight), d(b.attn.c_attn.bias),
                w(b.attn.c_proj.weight), d(b.attn.c_proj.bias),
                d(b.ln_2.weight), d(b.ln_2.bias),
                w(b.mlp.c_fc.weight), d(b.mlp.c_fc.bias),
                w(b.mlp.c_proj.weight), d(b.mlp.c_proj.bias)))

    @staticmethod
    def _linear_res(res, x, W, b):  # res + x @ W^T + b
        return torch.addmm(res, x, W.t()).add_(b)

    @staticmethod
    def _conv1d(x, W, b):  # x @ W + b
        return torch.addmm(b, x, W)

    @staticmethod
    def _conv1d_res(res, x, W, b):  # res + x @ W + b
        return torch.addmm(res, x, W).add_(b)

    def new_cache(self, batch, max_len, mode="prealloc"):
        return KVCache(self.L, batch, self.NH, min(max_len, self.max_pos), self.hs, mode)

    def forward(self, idx, cache, pos):
        """idx (B, T) int64 at positions [pos, pos + T), appended to the cache; returns the logits
        (B, 50257) of each sequence's last position."""
        B, T = idx.shape
        C, NH, hs = self.C, self.NH, self.hs
        x = F.embedding(idx, self.wte) + self.wpe[pos:pos + T]  # (B, T, C)
        x = x.view(B * T, C)
        lin, lin_res = self.lin, self.lin_res
        mask = None
        if T > 1:  # query i (position pos + i) sees keys 0 .. pos + i
            mask = torch.ones(T, pos + T, dtype=torch.bool).tril(diagonal=pos).logical_not_()
        for l, (l1w, l1b, aw, ab, pw, pb, l2w, l2b, fw, fb, mw, mb) in enumerate(self.layers):
            h = F.layer_norm(x, (C,), l1w, l1b, 1e-5)
            qkv = lin(h, aw, ab).view(B, T, 3, NH, hs)
            q = qkv[:, :, 0].transpose(1, 2) * self.scale  # (B, nh, T, hs)
            k = qkv[:, :, 1].transpose(1, 2)
            v = qkv[:, :, 2].transpose(1, 2)
            K, V = cache.update(l, k, v, pos)  # (B, nh, pos + T, hs)
            att = torch.matmul(q, K.transpose(-2, -1))  # (B, nh, T, pos + T)
            if mask is not None:
                att.masked_fill_(mask, float("-inf"))
            att = torch.softmax(att, dim=-1)
            y = torch.matmul(att, V).transpose(1, 2).reshape(B * T, C)
            x = lin_res(x, y, pw, pb)  # x + y @ W + b
            h = F.layer_norm(x, (C,), l2w, l2b, 1e-5)
            f = F.gelu(lin(h, fw, fb), approximate="tanh")
            x = lin_res(x, f, mw, mb)
        last = x.view(B, T, C)[:, -1]
        last = F.layer_norm(last, (C,), *self.lnf, 1e-5)
        return F.linear(last, self.wte)  # (B, 50257): LM head tied to wte

    def prefill(self, prompt_ids, cache):
        """Run the prompt once (as a batch of one) into the cache, then copy its keys and values
        to every sequence of the cache; returns the logits (cache.batch, V) of its last position
        for every sequence."""
        idx = torch.tensor([prompt_ids], dtype=torch.long)
        logits = self.forward(idx, cache, 0)
        if cache.batch > 1:
            cache.expand_first(len(prompt_ids))
        return logits.expand(cache.batch, -1)

    def logits_full(self, idx):
        """Logits of the last position by recomputing the whole sequence (no cache): a check."""
        cache = self.new_cache(idx.size(0), idx.size(1), "concat")
        return self.forward(idx, cache, 0)


def sample_top_k(logits, k, generator):
    """build-nanogpt's sampling: (B, V) logits -> (B, 1) ids."""
    probs = F.softmax(logits, dim=-1)
    topk_probs, topk_indices = torch.topk(probs, k, dim=-1)
    ix = torch.multinomial(topk_probs, 1, generator=generator)
    return torch.gather(topk_indices, -1, ix)


def generate(model, prompt_ids, batch, max_tokens, top_k=50, seed=42, mode="prealloc"):
    """prompt_ids (list) -> (batch, max_tokens) int64 of new tokens. Like gpt2c: the first token
    of each sample comes from the prompt's logits; then max_tokens - 1 one-token steps."""
    n = len(prompt_ids)
    assert n + max_tokens - 1 <= model.max_pos, "no sliding window here"
    gen = torch.Generator().manual_seed(seed)
    cache = model.new_cache(batch, n + max_tokens - 1, mode)
    logits = model.prefill(prompt_ids, cache)
    out = torch.empty(batch, max_tokens, dtype=torch.long)
    pos = n
    for step in range(max_tokens):
        ids = logits.argmax(dim=-1, keepdim=True) if top_k == 1 else sample_top_k(logits, top_k, gen)
        out[:, step:step + 1] = ids
        if step == max_tokens - 1:
            break
        logits = model.forward(ids, cache, pos)
        pos += 1
    return out
