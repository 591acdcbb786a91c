"""Synthetic surgical procedures with exact ground truth, so the whole library runs offline (SPEC §7).

``generate_procedure`` draws a timeline, ``render_video`` turns it into an H.264 mp4 whose
pixels carry it, the annotation writers emit Cholec80-format files, ``build_questions`` derives
evidence-windowed questions, and ``builtin_suite_path`` builds and caches ready-made suites.
"""

from medscope_gym.synthetic.annotations import (
    EventRecord,
    ToolAnnotation,
    read_events_file,
    read_phase_file,
    read_tool_file,
    write_annotations,
    write_events_file,
    write_phase_file,
    write_tool_file,
)
from medscope_gym.synthetic.builtin import (
    BUILTIN_SUITES,
    DEFAULT_SUITE,
    GENERATOR_VERSION,
    build_synthetic_suite,
    builtin_suite_path,
    default_cache_dir,
)
from medscope_gym.synthetic.procedure import (
    CHOLEC80_PHASES,
    CHOLEC80_TOOLS,
    EVENT_INSTRUMENTS,
    EVENT_KINDS,
    EVENT_PHASES,
    Event,
    PhaseSegment,
    Procedure,
    generate_procedure,
)
from medscope_gym.synthetic.questions import (
    EVENT_NOUNS,
    PHASE_LABELS,
    TOOL_LABELS,
    balance_answer_positions,
    build_questions,
    event_reference,
)
from medscope_gym.synthetic.render import (
    EVENT_MARK_COLORS,
    PHASE_COLORS,
    TOOL_COLORS,
    event_mark_box,
    event_mark_mask,
    frame_timestamps,
    read_frame_index,
    render_video,
)

__all__ = [
    "BUILTIN_SUITES",
    "CHOLEC80_PHASES",
    "CHOLEC80_TOOLS",
    "DEFAULT_SUITE",
    "EVENT_INSTRUMENTS",
    "EVENT_KINDS",
    "EVENT_MARK_COLORS",
    "EVENT_NOUNS",
    "EVENT_PHASES",
    "GENERATOR_VERSION",
    "PHASE_COLORS",
    "PHASE_LABELS",
    "TOOL_COLORS",
    "TOOL_LABELS",
    "Event",
    "EventRecord",
    "PhaseSegment",
    "Procedure",
    "ToolAnnotation",
    "balance_answer_positions",
    "build_questions",
    "build_synthetic_suite",
    "builtin_suite_path",
    "default_cache_dir",
    "event_mark_box",
    "event_mark_mask",
    "event_reference",
    "frame_timestamps",
    "generate_procedure",
    "read_events_file",
    "read_frame_index",
    "read_phase_file",
    "read_tool_file",
    "render_video",
    "write_annotations",
    "write_events_file",
    "write_phase_file",
    "write_tool_file",
]
