"""How the testbed draws its symbols: each shape visible in every colour channel, and nothing else moves."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from medscope_gym.synthetic.testbed import SYMBOLS, generate_testbed_video, render_frames, symbol_mask


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_every_symbol_shape_shows_in_every_colour_channel(symbol):
    """Each channel alone separates the symbol's pixels from the background around it: a shape is
    never drawn in a channel where it matches the background (the colour's other channels)."""
    video = generate_testbed_video(3, 120.0, events=(1, 1))
    (event,) = video.events
    video = dataclasses.replace(video, events=(dataclasses.replace(event, symbol=symbol),))
    frames = render_frames(video, range(event.start_frame, event.end_frame))
    mask = symbol_mask(symbol.split(" ")[1])
    patch = frames[:, 16:32, 16:32].astype(int)
    for channel in range(3):
        inside, outside = patch[:, mask, channel], patch[:, ~mask, channel]
        assert inside.min() - outside.max() >= 20, f"{symbol}: its shape is faint in channel {channel}"


def test_symbol_frames_differ_from_their_neighbours_only_at_the_symbol():
    video = generate_testbed_video(3, 120.0, events=(1, 1))
    (event,) = video.events
    before, on = render_frames(video, [event.start_frame - 1, event.start_frame]).astype(int)
    changed = np.abs(on - before).max(axis=-1) > 30
    assert changed[16:32, 16:32].sum() == symbol_mask(event.symbol.split(" ")[1]).sum()
    assert changed.sum() == changed[16:32, 16:32].sum()
