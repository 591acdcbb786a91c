"""``medscope model tiny``, ``medscope train sft`` and ``medscope eval`` (registered in medscope_gym.cli).

    medscope model tiny runs/tiny
    medscope train sft --model runs/tiny --data builtin:synthsurg-small --out runs/sft \
        --repeats 3 --recovery-rate 0.3 --evidence-jitter 3 --max-steps 1500 --lr 3e-3 --threads 1
    medscope eval --policy runs/sft/final --split val,test --temperature 0 --out runs/eval

torch / transformers are imported only when a command runs.
"""

from __future__ import annotations

import argparse

__all__ = ["register"]


def _threads(args: argparse.Namespace) -> None:
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)


def _cmd_model_tiny(args: argparse.Namespace) -> int:
    from medscope_gym.agents.vlm.tiny import TinyModelConfig, build_tiny_model

    cfg = TinyModelConfig(
        text_hidden=args.hidden, text_layers=args.layers, vocab_size=args.vocab_size, seed=args.seed
    )
    path = build_tiny_model(args.out, cfg)
    print(
        f"wrote a tiny Qwen2.5-VL model (hidden {cfg.text_hidden}, {cfg.text_layers} layers, "
        f"vocabulary {cfg.vocab_size or 'bytes'}) to {path}"
    )
    return 0


def _cmd_train_sft(args: argparse.Namespace) -> int:
    from medscope_gym.agents.sft.trainer import SFTConfig, train_sft

    _threads(args)
    cfg = SFTConfig(
        model=args.model,
        data=args.data,
        out=args.out,
        split=args.split,
        repeats=args.repeats,
        limit=args.limit,
        recovery_rate=args.recovery_rate,
        evidence_jitter=args.evidence_jitter,
        decimals=args.decimals,
        on_policy_repeats=args.on_policy_repeats,
        on_policy_turns=args.on_policy_turns,
        on_policy_temperature=args.on_policy_temperature,
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        lr=args.lr,
        warmup_steps=args.warmup_steps,
        lora=args.lora,
        lora_r=args.lora_r,
        lora_alpha=args.lora_alpha,
        freeze_vision=args.freeze_vision,
        save_every=args.save_every,
        resume=not args.no_resume,
        seed=args.seed,
        device=args.device,
        progress=not args.quiet,
    )
    final = train_sft(cfg)
    print(f"sft: final checkpoint {final}; loss curve {final.parent / 'loss.png'}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from medscope_gym.agents.evaluate import EvalConfig, evaluate, format_summary

    _threads(args)
    cfg = EvalConfig(
        policy=args.policy,
        suite=args.suite,
        splits=tuple(args.split.split(",")),
        repeats=args.repeats,
        num_envs=args.num_envs,
        seed=args.seed,
        limit=args.limit,
        temperature=args.temperature,
        max_new_tokens=args.max_new_tokens,
        out=args.out,
        device=args.device,
        progress=not args.quiet,
    )
    summary, _ = evaluate(cfg)
    print(f"policy {args.policy} on {args.suite} [{args.split}]")
    print(format_summary(summary))
    if args.out:
        print(f"trajectories and metrics.json in {args.out}")
    return 0


def register(commands: argparse._SubParsersAction, train_commands: argparse._SubParsersAction) -> None:
    """Add ``model tiny`` and ``eval`` to the top level and ``sft`` under ``train``."""
    model = commands.add_parser("model", help="build models for offline use")
    model_sub = model.add_subparsers(dest="model_command", required=True)
    tiny = model_sub.add_parser(
        "tiny", help="write a tiny Qwen2.5-VL-architecture checkpoint (random weights)"
    )
    tiny.add_argument("out")
    tiny.add_argument("--hidden", type=int, default=64, help="language model width")
    tiny.add_argument("--layers", type=int, default=2, help="decoder layers")
    tiny.add_argument(
        "--vocab-size", type=int, default=1024, help="BPE vocabulary bound (0: one token per byte)"
    )
    tiny.add_argument("--seed", type=int, default=0)
    tiny.set_defaults(func=_cmd_model_tiny)

    sft = train_commands.add_parser(
        "sft", help="SFT cold start on oracle trajectories (loss on assistant tokens)"
    )
    sft.add_argument("--model", required=True, help="checkpoint folder to start from")
    sft.add_argument(
        "--data", required=True, help="suite folder or builtin:NAME (reference rollouts come from it)"
    )
    sft.add_argument("--out", required=True, help="run folder (checkpoints, final/, loss.csv, loss.png)")
    sft.add_argument("--split", default="train")
    sft.add_argument("--repeats", type=int, default=1, help="reference rollouts per sample")
    sft.add_argument(
        "--recovery-rate",
        type=float,
        default=0.0,
        help="share of reference episodes opening with a non-imitated mistake the oracle recovers from",
    )
    sft.add_argument(
        "--evidence-jitter",
        type=float,
        default=0.0,
        help="seconds by which the oracle may widen each evidence window per rollout (varied numbers)",
    )
    sft.add_argument(
        "--decimals", type=int, default=None, help="decimals of the reference numbers (default: exact)"
    )
    sft.add_argument(
        "--on-policy-repeats",
        type=int,
        default=0,
        help="extra episodes per sample opened by --model itself, finished by the oracle (DAgger round)",
    )
    sft.add_argument(
        "--on-policy-turns", type=int, default=2, help="most opening turns --model plays per such episode"
    )
    sft.add_argument(
        "--on-policy-temperature",
        type=float,
        default=None,
        help="sampling temperature of those turns (default: the checkpoint's)",
    )
    sft.add_argument("--limit", type=int, default=None, help="only the first N samples of the split")
    sft.add_argument("--max-steps", type=int, default=1000)
    sft.add_argument("--batch-size", type=int, default=1)
    sft.add_argument("--grad-accum", type=int, default=1)
    sft.add_argument("--lr", type=float, default=1e-4)
    sft.add_argument("--warmup-steps", type=int, default=20)
    sft.add_argument("--lora", action="store_true", help="train LoRA adapters (merged into final/)")
    sft.add_argument("--lora-r", type=int, default=16)
    sft.add_argument("--lora-alpha", type=int, default=32)
    sft.add_argument("--freeze-vision", action="store_true")
    sft.add_argument("--save-every", type=int, default=250)
    sft.add_argument("--no-resume", action="store_true", help="start over even if out has checkpoints")
    sft.add_argument("--seed", type=int, default=0)
    sft.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    sft.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    sft.add_argument("--quiet", action="store_true", help="no progress bar")
    sft.set_defaults(func=_cmd_train_sft)

    ev = commands.add_parser("eval", help="evaluate a policy on a suite (metrics per task, trajectories)")
    ev.add_argument("--policy", required=True, help="oracle | no_tools | random | a checkpoint folder")
    ev.add_argument("--suite", default="builtin:synthsurg-small")
    ev.add_argument("--split", default="test", help="comma-separated splits, e.g. val,test")
    ev.add_argument("--repeats", type=int, default=1, help="episodes per sample")
    ev.add_argument("--num-envs", type=int, default=4, help="parallel episodes")
    ev.add_argument("--limit", type=int, default=None, help="only the first N samples")
    ev.add_argument(
        "--temperature", type=float, default=None, help="override sampling temperature (0: greedy)"
    )
    ev.add_argument("--max-new-tokens", type=int, default=None, help="override the longest turn in tokens")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--out", default=None, help="save trajectories/ and metrics.json here")
    ev.add_argument("--device", default="auto")
    ev.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ev.add_argument("--quiet", action="store_true")
    ev.set_defaults(func=_cmd_eval)
