"""Observations to token chunks: the model's chat template, delta by delta, and its processor.

A VLM episode is one growing token sequence. Each new observation is rendered with the model's
own chat template, but only the *new* part is tokenised: the template is rendered for the whole
conversation, the rendering of the conversation so far (which ends with the text of the last
assistant turn) is cut off the front, and the remaining delta (``<|im_end|>`` closing the
assistant turn, the tool response as a user turn, the next generation prompt) goes through the
processor together with the new frames, which expands each ``<|video_pad|>``/``<|image_pad|>``
to one token per merged patch. Earlier turns are never re-tokenised, so the ids the model
sampled stay in the sequence exactly as sampled. A template that is not prefix-stable (e.g. one
that rewrites earlier assistant turns) is detected and refused.

Frames are reduced on the policy side before the processor sees them: long previews and crops are
subsampled evenly to a frame cap, and every frame is resized to fit ``max_pixels`` (aspect kept), so
a tiny model on a CPU sees a handful of visual tokens while a real model can be given more.

An observation whose reduced frames and template delta equal those of a recent chunk (the G identical
resets of a GA-GRPO group) reuses that chunk's processed tensors, the very same objects: the processor
runs once per group, and a KV-cache generator prefills the shared preview once
(:mod:`medscope_gym.agents.vlm.generation`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from medscope_gym.agents.rollout.trajectory import MediaInputs
from medscope_gym.chat import Transcript, even_subsample
from medscope_gym.prompts import asked_text
from medscope_gym.protocol import SYSTEM_PROMPT

__all__ = ["ChatEncoder", "EpisodeContext", "FrameConfig", "ObservationChunk", "TemplateError"]

#: Recent chunks with frames an identical new observation may reuse (see ChatEncoder.encode_observation).
SHARED_CHUNKS = 4


class TemplateError(RuntimeError):
    """The chat template cannot be rendered incrementally (it rewrites earlier turns)."""


@dataclass
class FrameConfig:
    """How many frames of which size the model is shown (the env's frames are up to 224²)."""

    max_pixels: int = 224 * 224
    """Each frame is resized (aspect kept) to at most this many pixels before the processor."""
    max_preview_frames: int = 64
    """The reset preview is subsampled evenly to at most this many frames."""
    max_crop_frames: int = 32
    """A crop_video result is subsampled evenly to at most this many frames."""
    max_images: int = 3
    """At most this many get_frame frames (nearest the requested moment first kept in time order)."""
    max_preview_pixels: int | None = None
    """If set, the preview's frames lose the env's black letterbox (the env centres frames smaller than
    its observation space on a black canvas) and are resized to at most this many pixels: a preview
    the env made coarse then costs no more tokens than its own resolution. None: as other frames."""
    preview_as_frames: bool = False
    """Show the reset preview as separate frames, each followed by its time in text (as get_frame's
    frames are), instead of one video. Qwen2.5-VL carries a video frame's time only in rotary phases,
    which a model must learn to turn into the digits of a ``crop_video`` call; a timestamp written next
    to each frame only has to be copied (docs/agents.md, "Testbed recipe")."""
    crops_as_frames: bool = False
    """Show each ``crop_video`` result the same way: up to ``max_crop_frames`` separate frames, each
    followed by its time, so the moments a crop shows can be named and cropped again exactly."""
    restate_question: bool = False
    """Begin every tool response after the first observation with the question again (the reset text
    without its preview line, :func:`~medscope_gym.prompts.asked_text`), as Minigrid repeats its
    mission in every observation. Each later turn decides something the question settles (the next
    stretch to search, an interval or an option as the answer), and a small model at the end of a
    long episode does not look back to the first turn for it (docs/agents.md, "Testbed recipe")."""


@dataclass
class ObservationChunk:
    """The tokens and processed vision inputs of one observation, ready to append to an episode."""

    token_ids: list[int]
    media: MediaInputs
    text: str
    """The env's text of this observation."""
    vision: dict[str, Any]
    """Processor outputs for the frames: pixel_values_videos, video_grid_thw, second_per_grid_ts,
    pixel_values, image_grid_thw (tensors; only the keys this chunk has)."""


@dataclass
class EpisodeContext:
    """Per-episode rendering state: the transcript and the template text rendered so far."""

    transcript: Transcript
    rendered: str = ""
    observations: int = 0
    question: str = ""
    """The reset observation's question (``FrameConfig.restate_question``)."""


def _same_media(a: MediaInputs, b: MediaInputs) -> bool:
    for name in ("video", "video_times", "images", "image_times"):
        x, y = getattr(a, name), getattr(b, name)
        if (x is None) != (y is None):
            return False
        if x is not None and (x.shape != y.shape or x.dtype != y.dtype or not np.array_equal(x, y)):
            return False
    return True


def _fit(frames: np.ndarray, max_pixels: int) -> np.ndarray:
    """Resize frames (n, h, w, 3) to at most ``max_pixels`` each, aspect kept."""
    n, h, w, _ = frames.shape
    if h * w <= max_pixels:
        return np.ascontiguousarray(frames, dtype=np.uint8)
    scale = (max_pixels / (h * w)) ** 0.5
    size = (max(1, int(w * scale)), max(1, int(h * scale)))
    return np.stack([np.asarray(Image.fromarray(f).resize(size, Image.BICUBIC)) for f in frames])


def _trim_letterbox(frames: np.ndarray) -> np.ndarray:
    """``frames`` without the all-black border rows and columns they share (the env's letterbox)."""
    lit = frames.reshape(len(frames), *frames.shape[1:3], -1).any(axis=(0, 3))
    rows, cols = np.flatnonzero(lit.any(axis=1)), np.flatnonzero(lit.any(axis=0))
    if len(rows) == 0 or len(cols) == 0:
        return frames
    return frames[:, rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


class ChatEncoder:
    """Renders and tokenises episodes for one processor (model family) and frame budget."""

    def __init__(
        self, processor: Any, frames: FrameConfig | None = None, system_prompt: str | None = None
    ) -> None:
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.frames = frames or FrameConfig()
        self.system_prompt = SYSTEM_PROMPT if system_prompt is None else system_prompt
        self.image_token_id = int(self.tokenizer.convert_tokens_to_ids(processor.image_token))
        self.video_token_id = int(self.tokenizer.convert_tokens_to_ids(processor.video_token))
        #: The last few chunks with frames: an identical observation reuses the processed chunk (same
        #: object, so a KV-cache generator also prefills it once); compared exactly, frame by frame.
        self._recent: deque[tuple[str, ObservationChunk]] = deque(maxlen=SHARED_CHUNKS)

    # ------------------------------------------------------------------ episodes
    def start(self) -> EpisodeContext:
        """A new, empty episode."""
        return EpisodeContext(transcript=Transcript(system_prompt=self.system_prompt))

    def reduce(self, obs: dict[str, Any], first: bool) -> MediaInputs:
        """The frames of ``obs`` the model is shown: capped in number and size."""
        media = MediaInputs()
        video = obs.get("video")
        if video is not None and len(video):
            cap = self.frames.max_preview_frames if first else self.frames.max_crop_frames
            keep = even_subsample(len(video), cap)
            frames = np.asarray(video)[keep]
            if first and self.frames.max_preview_pixels is not None:
                frames = _fit(_trim_letterbox(frames), self.frames.max_preview_pixels)
            else:
                frames = _fit(frames, self.frames.max_pixels)
            times = np.asarray(obs["video_times"], dtype=np.float64).reshape(-1)[keep]
            if self.frames.preview_as_frames if first else self.frames.crops_as_frames:
                media.images, media.image_times = frames, times
                return media  # an observation with a video has no get_frame images
            media.video, media.video_times = frames, times
        images = obs.get("images")
        if images is not None and len(images):
            keep = even_subsample(len(images), self.frames.max_images)
            media.images = _fit(np.asarray(images)[keep], self.frames.max_pixels)
            media.image_times = np.asarray(obs["image_times"], dtype=np.float64).reshape(-1)[keep]
        return media

    def encode_observation(self, ctx: EpisodeContext, obs: dict[str, Any]) -> ObservationChunk:
        """Append ``obs`` to the episode and return the tokens of the new template delta."""
        media = self.reduce(obs, first=ctx.observations == 0)
        text = str(obs.get("text", ""))
        shown = text
        if ctx.observations == 0:
            ctx.question = asked_text(text)
        elif self.frames.restate_question:
            shown = f"{ctx.question}\n{text}"
        ctx.transcript.add_observation(media.as_observation(shown))
        full = self._render(ctx.transcript, add_generation_prompt=True)
        if not full.startswith(ctx.rendered):
            raise TemplateError(
                "the chat template re-renders earlier turns differently once a new message is added; "
                "exact token reuse needs a prefix-stable template (pass one with chat_template=...)"
            )
        delta = full[len(ctx.rendered) :]
        ctx.rendered = full
        ctx.observations += 1
        shared = self._shared(delta, media)
        if shared is not None:  # the same frames and template delta as a recent chunk: reuse its tensors
            return ObservationChunk(
                token_ids=list(shared.token_ids), media=shared.media, text=text, vision=shared.vision
            )
        ids, vision = self._process(delta, media)
        chunk = ObservationChunk(token_ids=ids, media=media, text=text, vision=vision)
        if media.video is not None or media.images is not None:
            self._recent.append((delta, chunk))
        return chunk

    def _shared(self, delta: str, media: MediaInputs) -> ObservationChunk | None:
        """A recent chunk with exactly this delta and these frames (e.g. the G resets of a group)."""
        if media.video is None and media.images is None:
            return None
        for seen, chunk in self._recent:
            if seen == delta and _same_media(chunk.media, media):
                return chunk
        return None

    def add_action(self, ctx: EpisodeContext, text: str) -> None:
        """Record the assistant's text (the decode of its sampled tokens) in the rendering state."""
        ctx.transcript.add_action(text)
        ctx.rendered += text

    def encode_reference_action(self, text: str) -> list[int]:
        """Token ids of a reference assistant turn (SFT data only; sampled turns are never encoded)."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    # ------------------------------------------------------------------ processing
    def process_media(self, media: MediaInputs) -> dict[str, Any]:
        """Processor tensors for ``media`` alone: the same processor call as at rollout, for re-scoring."""
        proc = self.processor
        text = ""
        if media.video is not None:
            text += f"<|vision_start|>{proc.video_token}<|vision_end|>"
        if media.images is not None:
            text += f"<|vision_start|>{proc.image_token}<|vision_end|>" * len(media.images)
        return self._process(text, media)[1]

    def _render(self, transcript: Transcript, add_generation_prompt: bool) -> str:
        messages = []
        for message in transcript.to_hf_messages():
            content = [b if b["type"] == "text" else {"type": b["type"]} for b in message["content"]]
            messages.append({"role": message["role"], "content": content})
        return self.processor.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt
        )

    def _process(self, text: str, media: MediaInputs) -> tuple[list[int], dict[str, Any]]:
        vision: dict[str, Any] = {}
        kwargs: dict[str, Any] = {"text": [text], "return_tensors": "pt"}
        if media.video is not None:
            kwargs["videos"] = [media.video]
            kwargs["videos_kwargs"] = self._video_kwargs(media)
        if media.images is not None:
            kwargs["images"] = list(media.images)
        out = self.processor(**kwargs)
        ids = out["input_ids"][0].tolist()
        for key in (
            "pixel_values_videos",
            "video_grid_thw",
            "second_per_grid_ts",
            "pixel_values",
            "image_grid_thw",
        ):
            if key in out and out[key] is not None:
                vision[key] = out[key]
        if "second_per_grid_ts" in vision:
            import torch

            vision["second_per_grid_ts"] = torch.as_tensor(vision["second_per_grid_ts"], dtype=torch.float32)
        return ids, vision

    @staticmethod
    def _video_kwargs(media: MediaInputs) -> dict[str, Any]:
        from transformers.video_utils import VideoMetadata

        n = len(media.video)
        fps = media.video_fps
        duration = float(media.video_times[-1] - media.video_times[0]) if n > 1 else 1.0 / fps
        return {
            "do_sample_frames": False,
            "video_metadata": [VideoMetadata(total_num_frames=n, fps=fps, duration=duration)],
        }
