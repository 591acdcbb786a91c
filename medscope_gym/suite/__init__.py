"""ClinVideoSuite: the sample schema and suite folders."""

from medscope_gym.suite.schema import ANSWER_TYPES, SPLITS, Caption, Sample, option_letter
from medscope_gym.suite.suite import SUITE_FILE, Suite, write_suite

__all__ = [
    "ANSWER_TYPES",
    "SPLITS",
    "SUITE_FILE",
    "Caption",
    "Sample",
    "Suite",
    "option_letter",
    "write_suite",
]
