"""Time per update of mCLR and R-Drop vs fairseq's label_smoothed_cross_entropy on the same batches.

One process, one model configuration (the Multi30k many-to-many transformer of
``quality_mclr_multi30k.py``; run that once with ``--runs ""`` to prepare ``data-bin``), real training
batches of the task ``translation_multilingual_contrastive``. For every batch, each criterion does one full
update (forward, backward, Adam step) on its own copy of the model, in rotating order, so that load from
other processes hits each criterion alike. Both wall time and this process's CPU time are recorded: on a
shared machine the CPU time is the steadier figure. No start-up, data loading or logging is timed.

Targets (issue 8): mCLR <= 1.10x, R-Drop <= 2.1x the baseline's time per update.

    python -m benchmarks.bench_fairseq_speed --steps 12 --config-name fused-kl

Results: ``benchmarks/results/bench_fairseq_speed_<device>-d<embed-dim>x<layers>.json`` unless ``--config-name``
names the setting.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
from argparse import Namespace
from pathlib import Path

from benchmarks.harness.results import add_result_arguments, check_writable, command_line, target_from_args
from benchmarks.harness.timing import stopwatch
from benchmarks.quality_mclr_multi30k import LANGS, SUPERVISED


def build(args):
    import torch
    from fairseq.criterions.label_smoothed_cross_entropy import LabelSmoothedCrossEntropyCriterion
    from fairseq.models.transformer import TransformerModel

    from fairseq_plugins.criterions import LabelSmoothedCrossEntropyWithContrastive, RDropLabelSmoothedCrossEntropy
    from fairseq_plugins.tasks import TranslationMultilingualContrastiveConfig, TranslationMultilingualContrastiveTask

    cfg = TranslationMultilingualContrastiveConfig(
        data=str(Path(args.work_dir).resolve() / "data-bin"),
        lang_pairs=",".join(f"{s}-{t}" for s, t in SUPERVISED),
        langs=",".join(LANGS),
        seed=1,
    )
    cfg.dataset_impl, cfg.train_subset, cfg.required_seq_len_multiple = "mmap", "train", 1
    task = TranslationMultilingualContrastiveTask.setup_task(cfg)
    task.load_dataset("train")
    torch.manual_seed(1)
    dim = args.embed_dim
    model_args = Namespace(
        arch="transformer", share_all_embeddings=True, encoder_layers=args.layers, decoder_layers=args.layers,
        encoder_embed_dim=dim, decoder_embed_dim=dim, encoder_ffn_embed_dim=4 * dim, decoder_ffn_embed_dim=4 * dim,
        encoder_attention_heads=args.heads, decoder_attention_heads=args.heads, dropout=0.1,
        max_source_positions=1024, max_target_positions=1024,
    )  # fmt: skip
    model = TransformerModel.build_model(model_args, task)
    criteria = {
        "baseline": LabelSmoothedCrossEntropyCriterion(task, False, 0.1),
        "mclr": LabelSmoothedCrossEntropyWithContrastive(task, False, 0.1, contrastive_lambda=1.0),
        "rdrop": RDropLabelSmoothedCrossEntropy(task, False, 0.1, rdrop_alpha=5.0),
    }
    itr = task.get_batch_iterator(
        task.dataset("train"), max_tokens=args.max_tokens, seed=1, max_positions=(1024, 1024)
    ).next_epoch_itr(shuffle=True)
    batches = [next(itr) for _ in range(args.warmup + args.steps)]
    return model, criteria, batches


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_fairseq_speed",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--work-dir", default="outputs/mclr_multi30k")
    parser.add_argument("--criteria", default="baseline,mclr,rdrop")
    parser.add_argument("--steps", type=int, default=12, help="timed updates per criterion")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--embed-dim", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=2048)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--bf16", action="store_true", help="autocast to bfloat16 (GPU)")
    parser.add_argument(
        "--warm-all-shapes",
        action="store_true",
        help="before timing, one untimed update per criterion on every batch. On an H100, updates took 0.04-1.0 s "
        "with the host busy throughout (CPU time = wall time), depending on which criterion ran before: "
        "one-off work per new batch shape (allocator growth, cuDNN/cuBLAS plans) is the suspect; this option "
        "pays it before timing",
    )
    parser.add_argument(
        "--order",
        choices=["rotate", "blocked"],
        default="rotate",
        help="rotate: every batch through each criterion in turn (spreads a shared CPU's load); blocked: all "
        "batches through one criterion, then the next (on a GPU, where switching models between updates "
        "was seen to inflate some updates several-fold)",
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="after timing, run N more updates per criterion under torch.profiler and print each one's operators "
        "by self CPU time (where an update's time goes)",
    )
    add_result_arguments(parser)
    return parser


RESULT_OPTIONS = ("config_name", "output", "results_dir", "overwrite")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup = {k: v for k, v in vars(args).items() if k not in RESULT_OPTIONS}
    target = target_from_args(args, "bench_fairseq_speed", f"{args.device}-d{args.embed_dim}x{args.layers}")
    check_writable(target, setup)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    model, all_criteria, batches = build(args)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        from fairseq import utils

        batches = [utils.move_to_cuda(b) for b in batches]
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=args.bf16)
    names = [n for n in args.criteria.split(",") if n]
    models = {name: copy.deepcopy(model).to(device) for name in names}
    optimizers = {name: torch.optim.Adam(models[name].parameters(), lr=1e-4) for name in names}
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    if args.warm_all_shapes:
        for name in names:
            net, criterion, optimizer = models[name], all_criteria[name], optimizers[name]
            net.train()
            for sample in batches:
                optimizer.zero_grad(set_to_none=True)
                with autocast:
                    loss, _, _ = criterion(net, sample)
                loss.backward()
                optimizer.step()
    if args.order == "blocked":
        schedule = [(step, sample, [name]) for name in names for step, sample in enumerate(batches)]
    else:
        schedule = [
            (step, sample, names[step % len(names) :] + names[: step % len(names)])
            for step, sample in enumerate(batches)
        ]
    for step, sample, order in schedule:
        for name in order:
            net, criterion, optimizer = models[name], all_criteria[name], optimizers[name]
            net.train()
            optimizer.zero_grad(set_to_none=True)
            if cuda:
                torch.cuda.synchronize()
            with stopwatch() as elapsed:
                with autocast:
                    loss, _, _ = criterion(net, sample)
                loss.backward()
                optimizer.step()
                if cuda:
                    torch.cuda.synchronize()
            if step >= args.warmup:
                wall[name].append(elapsed.wall)
                cpu[name].append(elapsed.cpu)
    if args.profile > 0:
        from torch.profiler import ProfilerActivity, profile

        for name in names:
            net, criterion, optimizer = models[name], all_criteria[name], optimizers[name]
            with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])) as prof:
                for sample in batches[args.warmup : args.warmup + args.profile]:
                    optimizer.zero_grad(set_to_none=True)
                    with autocast:
                        loss, _, _ = criterion(net, sample)
                    loss.backward()
                    optimizer.step()
            print(f"{name}: {args.profile} profiled updates")
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
    results = {}
    for name in names:
        results[name] = {
            "median_wall_s": round(statistics.median(wall[name]), 4),
            "median_cpu_s": round(statistics.median(cpu[name]), 4),
            "wall_vs_baseline": round(statistics.median(wall[name]) / statistics.median(wall["baseline"]), 3),
            "cpu_vs_baseline": round(statistics.median(cpu[name]) / statistics.median(cpu["baseline"]), 3),
            "wall_s": [round(x, 4) for x in wall[name]],
            "cpu_s": [round(x, 4) for x in cpu[name]],
        }
    ntokens = [int(b["ntokens"]) for b in batches[args.warmup :]]
    report = {
        "benchmark": "fairseq_speed",
        "device": (
            torch.cuda.get_device_name(0) + (", bf16 autocast" if args.bf16 else ", fp32")
            if cuda
            else f"cpu, torch threads {torch.get_num_threads()} (shared machine)"
        ),
        "setup": setup,
        "target_tokens_per_batch_median": statistics.median(ntokens),
        "results": results,
        "targets": {"mclr": 1.10, "rdrop": 2.1},
    }
    path = target.write(report, setup, command_line("bench_fairseq_speed", argv))
    for name in names:
        r = results[name]
        print(
            f"{name:9s} wall {r['median_wall_s']:.3f}s ({r['wall_vs_baseline']:.2f}x)  "
            f"cpu {r['median_cpu_s']:.3f}s ({r['cpu_vs_baseline']:.2f}x)"
        )
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
