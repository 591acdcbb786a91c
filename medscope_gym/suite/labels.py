"""Human-readable names for timeline labels, shared by questions, captions and trajectories."""

from __future__ import annotations

__all__ = ["ORDINALS", "a_or_an", "event_noun", "format_seconds", "ordinal", "phase_label", "tool_label"]

_PHASES = {
    "Preparation": "Preparation",
    "CalotTriangleDissection": "Calot triangle dissection",
    "ClippingCutting": "Clipping and cutting",
    "GallbladderDissection": "Gallbladder dissection",
    "GallbladderPackaging": "Gallbladder packaging",
    "CleaningCoagulation": "Cleaning and coagulation",
    "GallbladderRetraction": "Gallbladder retraction",
}
_EVENTS = {
    "clip_applied": "clip application",
    "duct_cut": "duct cut",
    "irrigation_flush": "irrigation flush",
    "specimen_bagged": "specimen bagging",
}
ORDINALS: tuple[str, ...] = (
    "first",
    "second",
    "third",
    "fourth",
    "fifth",
    "sixth",
    "seventh",
    "eighth",
    "ninth",
    "tenth",
)


def phase_label(name: str) -> str:
    return _PHASES.get(name, name.replace("_", " "))


def tool_label(name: str) -> str:
    return "Specimen bag" if name == "SpecimenBag" else name.replace("_", " ")


def event_noun(kind: str) -> str:
    return _EVENTS.get(kind, kind.replace("_", " "))


def ordinal(k: int) -> str:
    """0 → "first"; beyond the table, "11th", "22nd", ..."""
    if k < len(ORDINALS):
        return ORDINALS[k]
    n = k + 1
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def format_seconds(t: float) -> str:
    """Seconds with at most 3 decimals and no trailing zeros ("12.04", "3")."""
    return f"{t:.3f}".rstrip("0").rstrip(".")


def a_or_an(noun: str) -> str:
    """The noun with its indefinite article ("an irrigation flush")."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"
