"""The project's packages live in one namespace: foreign top-level ``agents``/``envs`` never shadow them.

``openai-agents`` (and others) install a top-level ``agents`` package. With such packages first on
``sys.path``, ``gym.make``, the CLI and the trainers must still reach ``medscope_gym.agents`` and
``medscope_gym.envs``. Run in a subprocess so the foreign packages really come first.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import contextlib, io, sys
    import agents, envs
    assert agents.FOREIGN and envs.FOREIGN, "the foreign packages must be the top-level ones"

    import gymnasium as gym
    import medscope_gym
    from medscope_gym.agents.grpo.trainer import train_grpo
    from medscope_gym.agents.sft.trainer import train_sft
    from medscope_gym.cli import main

    env = gym.make("MedScope/SynthSurg-v0")
    obs, info = env.reset(seed=0)
    assert type(env.unwrapped).__module__ == "medscope_gym.envs.clinvideo"
    env.close()

    for argv in (["train", "sft", "--help"], ["train", "grpo", "--help"]):
        with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
            main(argv)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["play", "--policy", "oracle", "--episodes", "2", "--seed", "0", "--quiet"])
    assert "oracle" in out.getvalue(), out.getvalue()
    print("OK", agents.__file__)
    """
)


def test_foreign_agents_and_envs_packages_do_not_shadow_ours(tmp_path):
    for name in ("agents", "envs"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("FOREIGN = True\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().startswith("OK " + str(tmp_path)), result.stdout
