"""Synthetic surgical procedures with exact ground truth, so the whole library runs offline (docs/suites.md).

``generate_procedure`` draws a timeline, ``render_video`` turns it into an H.264 mp4 whose
pixels carry it, the annotation writers emit Cholec80-format files, ``procedure_timeline`` hands
it to the suite pipeline (questions, filters, captions, trajectories), and ``builtin_suite_path``
builds and caches ready-made suites.
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
    MANIFEST_FILE,
    QUESTION_PRESETS,
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
    CLASSIC_TEMPLATES,
    EVENT_NOUNS,
    ORDINALS,
    PHASE_LABELS,
    TOOL_LABELS,
    balance_answer_positions,
    build_questions,
    event_reference,
    format_seconds,
)
from medscope_gym.synthetic.render import (
    EVENT_MARK_COLORS,
    INDEX_BITS,
    PHASE_COLORS,
    TOOL_COLORS,
    VFR_TIME_BASE,
    event_mark_box,
    event_mark_mask,
    frame_timestamps,
    read_frame_index,
    render_video,
)
from medscope_gym.synthetic.timeline import procedure_timeline

__all__ = [
    "BUILTIN_SUITES",
    "CHOLEC80_PHASES",
    "CHOLEC80_TOOLS",
    "CLASSIC_TEMPLATES",
    "DEFAULT_SUITE",
    "EVENT_INSTRUMENTS",
    "EVENT_KINDS",
    "EVENT_MARK_COLORS",
    "EVENT_NOUNS",
    "EVENT_PHASES",
    "GENERATOR_VERSION",
    "INDEX_BITS",
    "MANIFEST_FILE",
    "ORDINALS",
    "PHASE_COLORS",
    "PHASE_LABELS",
    "QUESTION_PRESETS",
    "TOOL_COLORS",
    "TOOL_LABELS",
    "VFR_TIME_BASE",
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
    "format_seconds",
    "frame_timestamps",
    "generate_procedure",
    "procedure_timeline",
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
