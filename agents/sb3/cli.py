"""``medscope train sb3``: train a Stable-Baselines3 agent on the numeric env and evaluate it.

    medscope train sb3 --algo ppo --env MedScope/SynthSurg-Numeric-v0 --steps 60000 --seed 0 \\
        --time-limit 900 --out runs/ppo-seed0

torch and stable-baselines3 are imported only when the command runs.
"""

from __future__ import annotations

import argparse
import json

from medscope_gym.agents.sb3.train import ALGOS, POLICIES, TrainConfig

__all__ = ["register"]


def _cmd_train_sb3(args: argparse.Namespace) -> int:
    from medscope_gym.agents.sb3.train import train
    from medscope_gym.metrics import format_table

    cfg = TrainConfig(
        out_dir=args.out,
        algo=args.algo,
        env_id=args.env,
        suite=args.suite,
        steps=args.steps,
        time_limit_s=args.time_limit,
        cpu_limit_s=args.cpu_limit,
        seed=args.seed,
        n_envs=args.n_envs,
        vec=args.vec,
        policy=args.policy,
        learning_rate=args.lr,
        n_steps=args.n_steps,
        batch_size=args.batch_size,
        n_epochs=args.n_epochs,
        ent_coef=args.ent_coef,
        reward=args.reward,
        eval_split=None if args.no_eval else args.eval_split,
        baselines=tuple(args.baselines),
        torch_threads=args.torch_threads,
        verbose=not args.quiet,
        env_kwargs=json.loads(args.env_kwargs) if args.env_kwargs else {},
    )
    results = train(cfg)
    print(
        f"trained {results['train_steps']} steps ({results['train_episodes']} episodes) in "
        f"{results['train_seconds']:.0f} s ({results['train_cpu_seconds']:.0f} s CPU); "
        f"model, curve and results in {args.out}"
    )
    if results["eval"]:
        columns = ["episodes", "accuracy", "evidence_R@0.5", "evidence_mIoU", "reward", "tool_calls", "turns"]
        print(format_table(results["eval"], columns))
    return 0


def register(commands: argparse._SubParsersAction, train_commands: argparse._SubParsersAction) -> None:
    """Add ``medscope train sb3``."""
    p = train_commands.add_parser(
        "sb3",
        help="train a Stable-Baselines3 agent on the numeric env",
        description="Train PPO/A2C on a numeric ClinVideo env, save the model, plot the "
        "learning curve and evaluate on held-out questions against scripted baselines.",
    )
    d = TrainConfig()
    p.add_argument("--algo", default=d.algo, choices=ALGOS)
    p.add_argument("--env", default=d.env_id, help="a registered numeric env id")
    p.add_argument("--suite", help="suite folder or builtin:NAME (default: the env id's suite)")
    p.add_argument("--steps", type=int, default=d.steps, help="environment steps over all parallel envs")
    p.add_argument("--time-limit", type=float, default=None, help="stop training after this many seconds")
    p.add_argument(
        "--cpu-limit",
        type=float,
        default=None,
        help="stop training after this many seconds of process CPU time",
    )
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--n-envs", type=int, default=d.n_envs)
    p.add_argument("--vec", default=d.vec, choices=("subproc", "dummy"))
    p.add_argument(
        "--policy",
        default=d.policy,
        choices=POLICIES,
        help="timeline: TimelinePolicy; mlp: SB3 MultiInputPolicy on the same features",
    )
    p.add_argument("--lr", type=float, default=d.learning_rate)
    p.add_argument("--n-steps", type=int, default=d.n_steps, help="rollout steps per env")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--n-epochs", type=int, default=d.n_epochs)
    p.add_argument("--ent-coef", type=float, default=d.ent_coef)
    p.add_argument("--reward", default=d.reward, help="graded (default) or a paper preset (paper, ...)")
    p.add_argument("--eval-split", default=d.eval_split, choices=("train", "val", "test"))
    p.add_argument("--no-eval", action="store_true", help="skip the held-out evaluation")
    p.add_argument(
        "--baselines", nargs="*", default=list(d.baselines), choices=("random", "no_tools", "oracle")
    )
    p.add_argument("--torch-threads", type=int, default=d.torch_threads)
    p.add_argument("--env-kwargs", help='JSON of extra env arguments, e.g. \'{"config": {"bins": 80}}\'')
    p.add_argument("--out", default=d.out_dir, help="output folder")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_train_sb3)
