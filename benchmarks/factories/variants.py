"""Variants of the SimCSE configurations that isolate one cost, for bench_losses and profile_losses.

``simcse-nocheck`` / ``cached-simcse-nocheck``: ``check_inputs=False``, so the difference to ``simcse`` /
``cached-simcse`` is the per-batch empty-text check (it reads one verdict back from the device per batch).
``simcse-compiled`` / ``cached-simcse-compiled``: the encoder wrapped in ``torch.compile`` (fewer, fused
kernels: the cure for a step bound by kernel-launch overhead); warm-up steps absorb the compilation.
``cached-simcse-cudagraphs``: the encoder compiled with ``mode="reduce-overhead"`` (CUDA graphs: one launch
replays a whole pass, so the per-kernel host cost that bounds GradCache's 3 x (2B / mini-batch) passes per
step on a GPU goes away); on a CPU it is plain compilation.
``simcse-two-pass``: the same loss on embeddings from two separate passes of the batch (as ST's MNRL does)
instead of one merged pass of twice the rows, to compare the two forward layouts on the device at hand.
"""

from __future__ import annotations

MINI_BATCH = 128


def _simcse(model, cached: bool = False, compiled: bool = False, cudagraphs: bool = False, **kwargs):
    from st_contrast.losses import CachedSimCSELoss, SimCSELoss

    if compiled or cudagraphs:
        compile_encoder(model, cudagraphs=cudagraphs)
    loss = (
        CachedSimCSELoss(model, temperature=0.05, mini_batch_size=MINI_BATCH, **kwargs)
        if cached
        else SimCSELoss(model, temperature=0.05, **kwargs)
    )
    return loss, lambda s: ([model.preprocess(s)], None)


class _TwoPass:
    def __init__(self, model):
        from st_contrast.losses import SimCSELoss

        self.loss = SimCSELoss(model, temperature=0.05)

    def parameters(self):
        return self.loss.parameters()

    def __call__(self, features, labels):
        model = self.loss.model
        first = model(dict(features[0]))["sentence_embedding"]
        second = model(dict(features[0]))["sentence_embedding"]
        return self.loss.compute_loss_from_embeddings([first, second])


def simcse_two_pass(model):
    return _TwoPass(model), lambda s: ([model.preprocess(s)], None)


def compile_encoder(model, cudagraphs: bool = False, backend: str | None = None):
    """Compile the Hugging Face encoder inside the SentenceTransformer (inductor, dynamic sequence length).

    ``backend`` (default ``$BENCH_COMPILE_BACKEND``, else ``inductor``) picks another ``torch.compile`` backend:
    ``eager`` traces the graph with dynamo but runs it eagerly, which is what a CPU dry run of the GPU session
    uses (inductor's code generation takes minutes on a busy CPU); ``mode`` is then left out.

    ``fallback_random`` makes dropout use the eager random generator, so GradCache's replay of each
    mini-batch's random state still reproduces the first pass's dropout masks exactly
    (``python -m benchmarks.check_compiled_gradcache`` checks it).

    With ``cudagraphs`` (``mode="reduce-overhead"``, static shapes: one graph per chunk width) each call
    starts a new graph step and clones the hidden states: a CUDA graph replays into the same output buffers,
    and GradCache keeps every mini-batch's first-pass embedding (a view of them under [CLS] pooling) until
    the batch is done.
    """
    import os

    import torch
    import torch._inductor.config as inductor_config

    backend = backend or os.environ.get("BENCH_COMPILE_BACKEND") or "inductor"
    inductor_config.fallback_random = True
    encoder = model[0].auto_model  # sentence-transformers calls the encoder's forward directly
    if not cudagraphs:
        encoder.forward = torch.compile(encoder.forward, dynamic=True, backend=backend)
        return
    if backend == "inductor":
        compiled = torch.compile(encoder.forward, mode="reduce-overhead", dynamic=False)
    else:
        compiled = torch.compile(encoder.forward, dynamic=False, backend=backend)

    def forward(*args, **kwargs):
        torch.compiler.cudagraph_mark_step_begin()
        output = compiled(*args, **kwargs)
        output.last_hidden_state = output.last_hidden_state.clone()
        return output

    encoder.forward = forward


FACTORIES = {
    "simcse-nocheck": lambda model: _simcse(model, check_inputs=False),
    "cached-simcse-nocheck": lambda model: _simcse(model, cached=True, check_inputs=False),
    "simcse-two-pass": simcse_two_pass,
    "simcse-compiled": lambda model: _simcse(model, compiled=True),
    "cached-simcse-compiled": lambda model: _simcse(model, cached=True, compiled=True),
    "cached-simcse-cudagraphs": lambda model: _simcse(model, cached=True, cudagraphs=True),
}
