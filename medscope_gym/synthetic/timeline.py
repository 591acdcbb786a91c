"""A synthetic :class:`Procedure` as the suite pipeline's :class:`~medscope_gym.suite.timeline.Timeline`.

Equal to what the Cholec80 loader reads back from the procedure's annotation files (tests check
it), without the round trip through text files.
"""

from __future__ import annotations

import numpy as np

from medscope_gym.suite.timeline import PhaseSpan, Timeline, TimelineEvent
from medscope_gym.synthetic.procedure import CHOLEC80_TOOLS, Procedure

__all__ = ["procedure_timeline"]


def procedure_timeline(procedure: Procedure, video_id: str) -> Timeline:
    phases = tuple(PhaseSpan(p.name, p.start, p.end) for p in procedure.phases)
    events = tuple(TimelineEvent(e.kind, e.start, e.end, e.instrument, e.phase) for e in procedure.events)
    return Timeline(
        video_id=video_id,
        duration=procedure.duration,
        fps=procedure.fps,
        phases=phases,
        tools=CHOLEC80_TOOLS,
        presence=np.asarray(procedure.presence_array(), dtype=np.uint8),
        events=tuple(sorted(events, key=lambda e: e.start)),
        source="synthetic",
    )
