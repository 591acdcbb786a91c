from __future__ import annotations

import numpy as np
import pytest

from medscope_gym.errors import ConfigError
from medscope_gym.synthetic import (
    CHOLEC80_PHASES,
    CHOLEC80_TOOLS,
    EVENT_INSTRUMENTS,
    EVENT_PHASES,
    generate_procedure,
)


def test_same_seed_same_timeline_and_different_seeds_differ():
    a, b = generate_procedure(3, 300.0), generate_procedure(3, 300.0)
    assert a == b
    c = generate_procedure(4, 300.0)
    assert c != a
    assert c.phases != a.phases and c.presence != a.presence


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("duration", [60.0, 137.3, 1800.0])
def test_timeline_invariants(seed: int, duration: float):
    p = generate_procedure(seed, duration)
    assert p.num_frames == round(duration * 25) and p.duration == p.num_frames / 25
    # All seven phases, contiguous, in Cholec80 order, covering the video.
    assert tuple(s.name for s in p.phases) == CHOLEC80_PHASES
    assert p.phases[0].start_frame == 0 and p.phases[-1].end_frame == p.num_frames
    assert all(x.end_frame == y.start_frame for x, y in zip(p.phases, p.phases[1:]))
    assert all(s.end_frame > s.start_frame for s in p.phases)
    # Per-second presence, one row per started second.
    assert p.presence_array().shape == (int(np.ceil(duration * 25 / 25)), len(CHOLEC80_TOOLS))
    # Events: 2-5 s, inside one phase, plausible, not overlapping, instrument on screen.
    assert p.events
    assert len(p.events) <= duration / 20 + 1
    for ev in p.events:
        assert 2.0 - 1e-9 <= ev.end - ev.start <= 5.0 + 1e-9
        seg = next(s for s in p.phases if s.name == ev.phase)
        assert seg.start_frame <= ev.start_frame < ev.end_frame <= seg.end_frame
        assert ev.kind in EVENT_PHASES[ev.phase] and ev.instrument in EVENT_INSTRUMENTS[ev.kind]
        for f in range(ev.start_frame, ev.end_frame):
            assert ev.instrument in p.instruments_at(f / p.fps)
            assert p.phase_at(f / p.fps) == ev.phase
    assert all(x.end_frame < y.start_frame for x, y in zip(p.events, p.events[1:]))


def test_phase_plausible_instruments_and_helpers():
    p = generate_procedure(5, 7200.0)
    pres = p.presence_array()
    sec_phase = np.array([CHOLEC80_PHASES.index(p.phase_at(k + 0.5)) for k in range(p.num_seconds)])
    share = {name: pres[sec_phase == i].mean(axis=0) for i, name in enumerate(CHOLEC80_PHASES)}
    tool = {t: i for i, t in enumerate(CHOLEC80_TOOLS)}
    assert share["ClippingCutting"][tool["Clipper"]] > 0.3
    assert share["GallbladderPackaging"][tool["SpecimenBag"]] > 0.4
    assert share["CalotTriangleDissection"][tool["SpecimenBag"]] == 0
    assert pres[:, tool["Grasper"]].mean() > 0.5
    assert 7200 / 60 <= len(p.events) <= 7200 / 20
    # Instruments enter and leave: many transitions, not a constant pattern.
    assert (np.diff(pres.astype(int), axis=0) != 0).sum() > 100
    assert p.phase_at(0.0) == "Preparation" and p.phase_at(p.duration + 5) == "GallbladderRetraction"
    assert p.phase_index_per_frame().shape == (p.num_frames,)


def test_short_videos_keep_a_prefix_of_phases():
    p = generate_procedure(1, 20.0)
    assert 1 <= len(p.phases) < 7
    assert tuple(s.name for s in p.phases) == CHOLEC80_PHASES[: len(p.phases)]
    with pytest.raises(ConfigError):
        generate_procedure(1, 1.0)
