"""The recipe configuration (``medscope recipe CONFIG --seed S``; docs/agents.md, "Testbed recipe")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from medscope_gym.agents.scripted import SearchStyle
from medscope_gym.config import Config, check, positive_float, positive_int
from medscope_gym.errors import ConfigError

__all__ = ["RecipeConfig"]

_STAGES = ("perception", "vcot", "answer_only", "grpo", "baselines")


@dataclass
class RecipeConfig(Config):
    """One seed of the testbed recipe: data, model, Stage I–III, answer-only model, baselines, table."""

    out: str = "runs/recipe"
    """Root folder; each seed writes ``OUT/seed-S/`` (stage folders, results.md/json, curves.png)."""
    seed: int = 0
    """Seed of the training stream (fresh videos per seed), the model's initialisation and training."""
    stages: tuple[str, ...] = _STAGES
    """Stages to run, in this order: perception, vcot, answer_only, grpo, baselines."""
    threads: int | None = 1
    """torch CPU threads of every stage; a stage block's own ``threads`` wins for that stage (its
    training; the recipe scores every row on these)."""
    model: dict[str, Any] = field(default_factory=dict)
    """TinyModelConfig fields of the model built from scratch (medscope model tiny)."""
    frames: dict[str, Any] = field(
        default_factory=lambda: {
            "max_pixels": 64 * 64,
            "max_preview_frames": 16,
            "max_crop_frames": 16,
            "max_images": 3,
        }
    )
    """FrameConfig fields of the model's policy (frames it is shown; the testbed crops are 64×64)."""
    max_new_tokens: int = 96
    """Longest assistant turn in tokens (sampling and evaluation)."""
    train_videos: int = 40
    """Fresh training videos per stage stream (perception, VCoT/answer-only, GA-GRPO: each its own)."""
    train_duration: tuple[float, float] = (90.0, 150.0)
    """Shortest and longest training video, seconds."""
    heldout_videos: int = 10
    """Held-out videos (half val, half test); the same for every seed."""
    heldout_duration: tuple[float, float] = (240.0, 360.0)
    """Shortest and longest held-out video, seconds (longer than the training videos)."""
    perception_duration: tuple[float, float] | None = None
    """Shortest and longest video of Stage I and of its rehearsal, seconds. None: from the shortest
    training to the longest held-out video. Stage I teaches reading and copying the shown times; a
    model that only ever copied times of videos up to 240 s does not copy those of a 300 s one
    (docs/results.md, "v6"), so perception covers every length the agent will meet, while the
    questions it is trained to answer stay on the shorter training videos."""
    events: tuple[int, int] = (3, 4)
    """Least and most symbols per testbed video, each in its own highlighted interval, in every suite
    and in Stage I (``TestbedConfig.events``): the intervals a question can name and a search can move
    on to."""
    heldout_seed: int = 100_003
    """Seed of the held-out videos (fixed: every seed is scored on the same questions)."""
    per_video: int = 3
    """Questions per template and video."""
    reading_check: bool = True
    """Also score Stage II and III on the held-out videos' "which symbol is on screen at t?" questions:
    whether a model reads the frames, apart from whether it finds them."""
    sampled_temperature: float | None = 1.0
    """Also score the answer-only model and Stages II and III with sampling at this temperature (the
    "sampled" table; None: greedy only)."""
    eval_limit: int | None = None
    """Score only the first this-many held-out questions (quick runs)."""
    perception: dict[str, Any] = field(default_factory=dict)
    """PerceptionConfig fields of Stage I (perception warm-up, agents/recipe/perception.py), e.g. steps,
    learning_rate; its seed, threads and video durations come from this config."""
    vcot: dict[str, Any] = field(default_factory=dict)
    """SFTConfig fields of Stage II (visual-CoT cold start from Stage I)."""
    answer_only: dict[str, Any] = field(default_factory=dict)
    """SFTConfig fields of the answer-only model (Stage II without tool calls, from Stage I)."""
    rehearsal: dict[str, Any] = field(default_factory=dict)
    """Stage I's examples rehearsed beside Stage II and the answer-only model (the same for both), as
    :class:`~medscope_gym.agents.recipe.perception.Rehearsal` keyword arguments: ``skills`` (required
    when set), ``batch_size``, ``weight``. Empty: no rehearsal. Video durations, crop layout and seed
    come from this config."""
    uniform: dict[str, Any] = field(default_factory=dict)
    """SFTConfig fields of the uniform-frames model: Stage I fine-tuned, as the answer-only model is,
    to answer after one scripted crop of evenly spread frames, as many as the trained agent's tool
    frames (SFT's "uniform" reference; the recipe sets ``reference``, ``uniform_crops`` and
    ``uniform_frames``). The uniform-frames baseline then scores it. Empty: the baseline scores Stage
    II's model on such frames instead, which a model trained on the search reference does not answer
    from (docs/results.md, "The uniform-frames baseline")."""
    grpo: dict[str, Any] = field(default_factory=dict)
    """GRPOConfig fields of Stage III (GA-GRPO from Stage II)."""
    search: dict[str, Any] = field(default_factory=dict)
    """:class:`~medscope_gym.agents.scripted.SearchStyle` fields: how the search reference writes the
    close crop and the answer after a crop listing, in Stage I's ``zoom`` and ``answer``, their
    rehearsal, Stage II's reference and the listings' scores (empty: its original script)."""
    baselines: tuple[str, ...] = ("no_tools", "random", "search", "oracle", "uniform")
    """Baselines scored on the held-out questions ("uniform": the uniform-frames baseline)."""

    def __post_init__(self) -> None:
        self.stages = tuple(self.stages)
        self.baselines = tuple(self.baselines)
        self.train_duration = tuple(float(x) for x in self.train_duration)  # type: ignore[assignment]
        self.heldout_duration = tuple(float(x) for x in self.heldout_duration)  # type: ignore[assignment]
        from medscope_gym.synthetic.testbed import events_range

        self.events = events_range(self.events, "RecipeConfig.events")
        check(self, positive_int, "max_new_tokens", "train_videos", "heldout_videos", "per_video")
        check(self, positive_int, "threads", "eval_limit", optional=True)
        check(self, positive_float, "sampled_temperature", optional=True)
        if self.perception_duration is not None:
            self.perception_duration = tuple(float(x) for x in self.perception_duration)  # type: ignore[assignment]
        for name in ("train_duration", "heldout_duration", "perception_duration"):
            if getattr(self, name) is None:
                continue
            lo, hi = getattr(self, name)
            positive_float(lo, name)
            if hi < lo:
                raise ConfigError(f"{name} must be (shortest, longest), got {(lo, hi)}")
        unknown = [s for s in self.stages if s not in _STAGES]
        if unknown:
            raise ConfigError(f"unknown stage(s) {unknown}; known: {', '.join(_STAGES)}")
        if self.rehearsal:
            unknown = sorted(set(self.rehearsal) - {"skills", "batch_size", "weight"})
            if unknown or "skills" not in self.rehearsal:
                raise ConfigError(
                    f"rehearsal: fields are skills (required), batch_size, weight; got "
                    f"{sorted(self.rehearsal)}"
                )
        set_here = sorted({"reference", "uniform_crops", "uniform_frames"} & set(self.uniform))
        if set_here:
            raise ConfigError(f"uniform: {', '.join(set_here)} are set by the recipe, not the config")
        self.style  # noqa: B018 (checks the search fields early)
        bad = [b for b in self.baselines if b not in ("no_tools", "random", "search", "oracle", "uniform")]
        if bad:
            raise ConfigError(f"unknown baseline(s) {bad}; known: no_tools, random, search, oracle, uniform")

    @property
    def style(self) -> SearchStyle:
        """``search`` as a :class:`~medscope_gym.agents.scripted.SearchStyle`."""
        return SearchStyle.from_dict(self.search, "RecipeConfig.search")

    @property
    def stage_one_duration(self) -> tuple[float, float]:
        """The video lengths of Stage I and its rehearsal (``perception_duration``, else the span of
        the training and held-out lengths)."""
        if self.perception_duration is not None:
            return self.perception_duration
        return (
            min(self.train_duration[0], self.heldout_duration[0]),
            max(self.train_duration[1], self.heldout_duration[1]),
        )
