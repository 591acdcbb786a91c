"""``medscope model tiny``, ``medscope train sft`` and ``medscope eval`` (registered in medscope_gym.cli).

    medscope model tiny runs/tiny --text-hidden 128 --text-layers 4
    medscope train sft --model runs/tiny --suite builtin:synthsurg-small --out runs/sft \\
        --repeats 3 --recovery-rate 0.3 --evidence-jitter 3 --max-steps 1500 --learning-rate 3e-3 --threads 1
    medscope eval --policy runs/sft/final --splits val,test --temperature 0 --out runs/eval

Every flag is a field of :class:`~medscope_gym.agents.vlm.tiny.TinyModelConfig`,
:class:`~medscope_gym.agents.sft.config.SFTConfig` or :class:`~medscope_gym.agents.evaluate.EvalConfig`;
``--config FILE.yaml`` loads fields and the flags given win. torch / transformers are imported only when
a command runs.
"""

from __future__ import annotations

import argparse

from medscope_gym.config import add_config_arguments, config_from_args

__all__ = ["register"]


def _cmd_model_tiny(args: argparse.Namespace) -> int:
    from medscope_gym.agents.training.metrics import quiet_transformers
    from medscope_gym.agents.vlm.tiny import TinyModelConfig, build_tiny_model

    quiet_transformers()
    cfg = config_from_args(TinyModelConfig, args)
    path = build_tiny_model(args.out, cfg)
    print(
        f"wrote a tiny Qwen2.5-VL model (hidden {cfg.text_hidden}, {cfg.text_layers} layers, "
        f"vocabulary {cfg.vocab_size or 'bytes'}) to {path}"
    )
    return 0


def _cmd_train_sft(args: argparse.Namespace) -> int:
    from medscope_gym.agents.sft.config import SFTConfig
    from medscope_gym.agents.sft.trainer import train_sft

    cfg = config_from_args(SFTConfig, args)
    final = train_sft(cfg)
    print(f"sft: final checkpoint {final}; loss curve {final.parent / 'loss.png'}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from medscope_gym.agents.evaluate import EvalConfig, evaluate, format_summary

    cfg = config_from_args(EvalConfig, args)
    summary, _ = evaluate(cfg)
    print(f"policy {cfg.policy} on {cfg.suite} [{','.join(cfg.splits)}]")
    print(format_summary(summary))
    if cfg.out:
        print(f"trajectories and metrics.json in {cfg.out}")
    if cfg.html:
        from medscope_gym.agents.viewer.report import write_report

        print(f"episode viewer: {write_report([cfg.out])}")
    return 0


def register(commands: argparse._SubParsersAction, train_commands: argparse._SubParsersAction) -> None:
    """Add ``model tiny`` and ``eval`` to the top level and ``sft`` under ``train``."""
    from medscope_gym.agents.evaluate import EvalConfig
    from medscope_gym.agents.sft.config import SFTConfig
    from medscope_gym.agents.vlm.tiny import TinyModelConfig

    model = commands.add_parser("model", help="build models for offline use")
    model_sub = model.add_subparsers(dest="model_command", required=True)
    tiny = model_sub.add_parser(
        "tiny", help="write a tiny Qwen2.5-VL-architecture checkpoint (random weights)"
    )
    tiny.add_argument("out", help="folder to write the checkpoint to")
    add_config_arguments(tiny, TinyModelConfig)
    tiny.set_defaults(func=_cmd_model_tiny)

    sft = train_commands.add_parser(
        "sft", help="SFT cold start on oracle trajectories (loss on assistant tokens)"
    )
    add_config_arguments(sft, SFTConfig)
    sft.set_defaults(func=_cmd_train_sft)

    ev = commands.add_parser("eval", help="evaluate a policy on a suite (metrics per task, trajectories)")
    add_config_arguments(ev, EvalConfig)
    ev.set_defaults(func=_cmd_eval)
