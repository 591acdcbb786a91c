"""TRL's GRPOTrainer on ClinVideoEnv through the adapter: real training steps on the tiny model, on CPU."""

from __future__ import annotations

import json
import statistics
import warnings

import gymnasium as gym
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl", reason="the TRL adapter needs the [trl] extra (pip install 'medscope-gym[trl]')")

from medscope_gym.agents.trl import (  # noqa: E402
    REWARD_PARTS,
    build_dataset,
    clinvideo_environment_factory,
    env_reward_funcs,
    prepare_processing_class,
)
from medscope_gym.envs.clinvideo import ClinVideoEnv  # noqa: E402

SYSTEM = "Use the tools, then answer."


class CountingEnv(gym.Wrapper):
    """Counts the steps the adapter makes (live tool calls and the reward replay alike)."""

    steps = 0

    def step(self, action):
        CountingEnv.steps += 1
        return self.env.step(action)


def _two_samples(suite):
    """A choice and an interval question (distinct texts), each with a single evidence window."""
    train = [
        s
        for s in suite
        if s.split == "train" and len(s.evidence) == 1 and s.evidence[0][0] < s.evidence[0][1]
    ]
    choice = next(s for s in train if s.answer_type == "choice")
    interval = next(s for s in train if s.answer_type == "interval" and s.question != choice.question)
    return [choice, interval]


def _call(name: str, **arguments) -> str:
    return f"<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>"


def _scripts(sample) -> dict[str, list[str]]:
    """Two behaviours per question: inspect the evidence then answer right, or answer at once, wrongly."""
    lo, hi = sample.evidence[0]
    return {
        "tools": [
            f"<think>look</think>\n{_call('crop_video', start_time=lo, end_time=hi)}",
            f"<think>closer</think>\n{_call('get_frame', timestamp=round((lo + hi) / 2, 2))}",
            f"<think>seen</think>\n<answer>{sample.answer}</answer>",
        ],
        "direct": ["<think>guess</think>\n<answer>[0, 1]</answer>"],
    }


def _scripted_generate(model, processor, samples):
    """Replace sampling by scripted turns (which script: by the question in the prompt, and for the first
    turn by the row's parity, so every GRPO group holds one tool user and one direct answerer)."""
    tok = processor.tokenizer
    pad = tok.pad_token_id

    def generate(input_ids, attention_mask=None, **kwargs):
        rows = []
        for i, ids in enumerate(input_ids):
            text = tok.decode(ids[attention_mask[i].bool()] if attention_mask is not None else ids)
            sample = next(s for s in samples if f"Question: {s.question}" in text)
            turn = text.count("<tool_response>")
            script = _scripts(sample)["tools" if turn or i % 2 == 0 else "direct"]
            rows.append(tok(script[min(turn, len(script) - 1)], add_special_tokens=False)["input_ids"])
        width = max(map(len, rows))
        new = torch.tensor([r + [pad] * (width - len(r)) for r in rows], dtype=input_ids.dtype)
        return torch.cat([input_ids, new.to(input_ids.device)], dim=1)

    model.generate = generate


def _trainer(tiny_dir, suite, frames, *, steps, modality, env_fn=None, generation_kwargs=None, samples=None):
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl import GRPOConfig, GRPOTrainer

    processor = prepare_processing_class(AutoProcessor.from_pretrained(tiny_dir))
    model = AutoModelForImageTextToText.from_pretrained(tiny_dir, dtype=torch.float32)
    ids = [s.id for s in samples] if samples else [s.id for s in suite if s.split == "train"][:2]
    dataset = build_dataset(suite, split="train", system_prompt=SYSTEM, sample_ids=ids)
    funcs, weights = env_reward_funcs()
    args = GRPOConfig(
        output_dir=str(tiny_dir.parent / f"trl-out-{modality}"),
        per_device_train_batch_size=4,
        num_generations=2,
        max_completion_length=512,  # room for both tool responses (frames included) and the answer
        max_tool_calling_iterations=4,
        generation_kwargs=generation_kwargs,
        max_steps=steps,
        learning_rate=1e-3,
        reward_weights=weights,
        scale_rewards="none",
        bf16=False,
        use_cpu=True,
        activation_checkpointing=False,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        disable_tqdm=True,
        dataloader_pin_memory=False,
        seed=0,
    )
    factory = clinvideo_environment_factory(
        suite, split="train", modality=modality, frames=frames, env_fn=env_fn
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=funcs,
            args=args,
            train_dataset=dataset,
            processing_class=processor,
            environment_factory=factory,
        )
    return trainer, processor, model


def _direct_parts(suite, sample_id, turns):
    env = ClinVideoEnv(suite, split="train")
    env.reset(options={"sample_id": sample_id})
    for text in turns:
        _, _, terminated, truncated, info = env.step(text)
        if terminated or truncated:
            return info["reward_parts"]
    raise AssertionError("script did not finish the episode")


def test_grpo_steps_run_tools_through_the_env_and_log_its_rewards(tiny_dir, trl_suite, small_frames):
    samples = _two_samples(trl_suite)
    CountingEnv.steps = 0
    trainer, processor, model = _trainer(
        tiny_dir,
        trl_suite,
        small_frames,
        steps=2,
        modality="images",
        samples=samples,
        env_fn=lambda: CountingEnv(ClinVideoEnv(trl_suite, split="train")),
    )
    _scripted_generate(model, processor, samples)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    per_step = []

    from transformers import TrainerCallback

    class Record(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            per_step.append([env.last_result for env in trainer.environments])

    trainer.add_callback(Record())
    trainer.train()

    expected = {
        (s.id, name): _direct_parts(trl_suite, s.id, script)
        for s in samples
        for name, script in _scripts(s).items()
    }
    logs = [h for h in trainer.state.log_history if "reward" in h]
    assert len(logs) == len(per_step) == 2
    for log, results in zip(logs, per_step):
        assert len(results) == 4 and all(r is not None for r in results)
        paths = []
        for env, result in zip(trainer.environments, results):
            path = "tools" if len(result.turns) == 3 else "direct"
            paths.append(path)
            assert (
                result.reward_parts == expected[(env.sample_id, path)]
            )  # the env's own reward for the script
            assert result.live_matches_replay and result.empty_turns == 0
        assert sorted(paths) == ["direct", "direct", "tools", "tools"]
        for part in REWARD_PARTS:  # what TRL logged is the env's reward parts
            assert log[f"rewards/medscope_{part}/mean"] == pytest.approx(
                statistics.fmean(r.reward_parts[part] for r in results)
            )
        assert log["reward"] == pytest.approx(log["rewards/medscope_total/mean"])
        assert log["tools/call_frequency"] == pytest.approx(1.0)  # 2 calls in half of the rollouts
    tool_results = [r for r in per_step[-1] if len(r.turns) == 3]
    assert [c["name"] for c in tool_results[0].live_tool_calls] == ["crop_video", "get_frame"]
    assert tool_results[0].reward_parts["accuracy"] == 1.0 and tool_results[0].reward_parts["crop"] == 2.0
    # 2 steps x (2 tool rollouts x (2 live calls + 3 replayed turns) + 2 direct rollouts x 1 replayed turn)
    assert CountingEnv.steps == 2 * (2 * 5 + 2 * 1)
    assert any(not torch.equal(before[n], p) for n, p in model.named_parameters())  # the update happened


def test_sampled_grpo_step_passes_frames_to_the_model(tiny_dir, trl_suite, small_frames):
    processor_tokens = [
        "<|vision_start|>",
        "<|vision_end|>",
        "<|image_pad|>",
        "<|video_pad|>",
        "<|im_start|>",
    ]
    from transformers import AutoProcessor

    tok = AutoProcessor.from_pretrained(tiny_dir).tokenizer
    suppress = [tok.convert_tokens_to_ids(t) for t in processor_tokens]
    trainer, _, model = _trainer(
        tiny_dir,
        trl_suite,
        small_frames,
        steps=1,
        modality="images",
        generation_kwargs={"max_new_tokens": 24, "suppress_tokens": suppress},
    )
    patches = []
    model.model.visual.register_forward_hook(lambda module, args, out: patches.append(args[0].shape[0]))
    trainer.train()
    (log,) = [h for h in trainer.state.log_history if "reward" in h]
    results = [env.last_result for env in trainer.environments]
    for part in REWARD_PARTS:
        assert log[f"rewards/medscope_{part}/mean"] == pytest.approx(
            statistics.fmean(r.reward_parts[part] for r in results)
        )
    # 4 rollouts x 4 preview frames x 16 patches (56x56 px, 14 px patches), at generation and in the loss
    assert patches and patches[0] >= 4 * small_frames.max_preview_frames * 16


def test_trl_step_throughput(tiny_dir, trl_suite):
    from benchmarks.trl_throughput import trl_step_throughput  # measurement code: benchmarks/ of the checkout

    result = trl_step_throughput(
        str(tiny_dir), str(trl_suite.root), steps=1, batch_questions=1, group_size=2, max_new_tokens=8, seed=0
    )
    assert result["steps"] == 1 and len(result["step_seconds"]) == 1
    assert result["seconds_per_step"] > 0 and result["generated_tokens"] > 0
    assert result["generated_tokens_per_s"] == pytest.approx(
        result["generated_tokens"] / result["seconds_per_step"]
    )
    assert result["rollouts_per_step"] == 2 and result["settings"]["trl_version"]
