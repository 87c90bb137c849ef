"""SPD naming conventions: production ids, task names and dataset names in one place.

The patterns come from configuration (``TaskSettings``) with SPD defaults. Every name is parsed with a
regular expression compiled from the same pattern that formats it, anchored at both ends, and with the
physics tag matched greedily: physics tags contain dots and dashes
(``minbias-P8-spdroot417-dev.10GeV``), so the fixed structure (production id, step, version) is found
from the right. Errors name the offending part so the form can show them next to the field.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Any

DEFAULT_STEP_TYPES: tuple[str, ...] = ("SIM", "RECO")
DEFAULT_CAMPAIGN_PREFIXES: tuple[str, ...] = ("", "TEST_S1-")
DEFAULT_PRODUCTION_PREFIX = "PROD"
DEFAULT_NUMBER_DIGITS = 3
DEFAULT_TASK_NAME_PATTERN = "{production}.{step}"
DEFAULT_BUNCH_SUFFIX = ".{n}"
DEFAULT_DATASET_PATTERN = "{scope}.{tag}.{production}.{step}.{version}"
DEFAULT_TAG_STRIP_REGEX = r"\.V\d+$"
DEFAULT_SCOPE_REGEX = r"[A-Za-z0-9_]+"
MAX_NAME_LENGTH = 255


class NamingError(ValueError):
    """A name does not follow the conventions; ``part`` names the offending component."""

    def __init__(self, part: str, message: str) -> None:
        super().__init__(message)
        self.part = part
        self.message = message


@dataclass(frozen=True)
class NamingRules:
    """The configurable conventions (built from ``TaskSettings``; defaults are SPD's)."""

    step_types: tuple[str, ...] = DEFAULT_STEP_TYPES
    campaign_prefixes: tuple[str, ...] = DEFAULT_CAMPAIGN_PREFIXES
    production_prefix: str = DEFAULT_PRODUCTION_PREFIX
    number_digits: int = DEFAULT_NUMBER_DIGITS
    task_name_pattern: str = DEFAULT_TASK_NAME_PATTERN
    bunch_suffix: str = DEFAULT_BUNCH_SUFFIX
    dataset_pattern: str = DEFAULT_DATASET_PATTERN
    tag_strip_regex: str = DEFAULT_TAG_STRIP_REGEX
    scope_regex: str = DEFAULT_SCOPE_REGEX

    @classmethod
    def from_settings(cls, tasks_settings: Any) -> NamingRules:
        """Copy the same-named fields of a ``TaskSettings`` (missing ones keep the defaults)."""
        values = {
            name: getattr(tasks_settings, name)
            for name in cls.__dataclass_fields__
            if hasattr(tasks_settings, name)
        }
        for key in ("step_types", "campaign_prefixes"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)

    # --- regular expressions built from the patterns -------------------------------------------

    def production_regex(self) -> str:
        prefixes = sorted(self.campaign_prefixes, key=len, reverse=True)
        campaign = "|".join(re.escape(p) for p in prefixes)
        return (
            f"(?P<campaign>{campaign}){re.escape(self.production_prefix)}"
            f"(?P<year>\\d{{4}})-(?P<number>\\d{{{self.number_digits},}})"
        )

    def step_regex(self) -> str:
        return "|".join(re.escape(s) for s in sorted(self.step_types, key=len, reverse=True))

    def _compile(self, pattern: str) -> re.Pattern[str]:
        pieces = {
            "production": f"(?P<production>{self.production_regex()})",
            "step": f"(?P<step>{self.step_regex()})",
            "scope": f"(?P<scope>{self.scope_regex})",
            # Greedy: the physics tag takes everything up to the rightmost match of the fixed tail.
            "tag": r"(?P<tag>.+)",
            "version": r"(?P<version>\d+)",
            "n": r"(?P<n>\d+)",
        }
        out: list[str] = []
        for literal, field, _spec, _conv in string.Formatter().parse(pattern):
            out.append(re.escape(literal))
            if field is not None:
                if field not in pieces:
                    raise NamingError("pattern", f"unknown placeholder {{{field}}} in pattern {pattern!r}")
                out.append(pieces.pop(field))
        return re.compile("".join(out))


@dataclass(frozen=True, order=True)
class ProductionId:
    """``<campaign prefix>PROD<yyyy>-<nnn>``, e.g. ``PROD2025-008`` or ``TEST_S1-PROD2025-001``."""

    campaign: str
    year: int
    number: int

    def format(self, rules: NamingRules) -> str:
        return (
            f"{self.campaign}{rules.production_prefix}{self.year:04d}-{self.number:0{rules.number_digits}d}"
        )


@dataclass(frozen=True)
class TaskName:
    production: ProductionId
    step: str
    index: int | None = None  # position in a bunch (1..N); None for a single task

    def format(self, rules: NamingRules) -> str:
        name = rules.task_name_pattern.format(production=self.production.format(rules), step=self.step)
        if self.index is not None:
            name += rules.bunch_suffix.format(n=self.index)
        return name

    def base(self) -> TaskName:
        return TaskName(self.production, self.step, None)


@dataclass(frozen=True)
class DatasetName:
    scope: str
    tag: str
    production: ProductionId
    step: str
    version: int

    def format(self, rules: NamingRules) -> str:
        return rules.dataset_pattern.format(
            scope=self.scope,
            tag=self.tag,
            production=self.production.format(rules),
            step=self.step,
            version=self.version,
        )


def _production_from(match: re.Match[str]) -> ProductionId:
    return ProductionId(match["campaign"], int(match["year"]), int(match["number"]))


def parse_task_name(text: str, rules: NamingRules) -> TaskName:
    """Parse ``PROD2025-008.SIM`` or ``PROD2025-008.SIM.3`` (bunch member)."""
    text = text.strip()
    base = rules._compile(rules.task_name_pattern)
    suffix = rules._compile(rules.bunch_suffix)
    full = re.compile(f"(?:{base.pattern})(?:{suffix.pattern})?")
    match = full.fullmatch(text)
    if match:
        index = int(match["n"]) if match["n"] is not None else None
        if index is not None and index < 1:
            raise NamingError("index", f"bunch index {index} must be 1 or more")
        return TaskName(_production_from(match), match["step"], index)
    # Say which part is wrong, as precisely as we can.
    if not re.match(rules.production_regex(), text):
        raise NamingError(
            "production",
            f"task name {text!r} must start with a production id like "
            f"{ProductionId('', 2025, 1).format(rules)}",
        )
    raise NamingError(
        "step",
        f"task name {text!r} must end with a step ({', '.join(rules.step_types)}) "
        f"as in {TaskName(ProductionId('', 2025, 1), rules.step_types[0]).format(rules)}",
    )


def parse_dataset_name(text: str, rules: NamingRules) -> DatasetName:
    """Parse an output dataset name from the right (the physics tag may contain dots)."""
    text = text.strip()
    if len(text) > MAX_NAME_LENGTH:
        raise NamingError("dataset", f"dataset name is longer than {MAX_NAME_LENGTH} characters")
    match = rules._compile(rules.dataset_pattern).fullmatch(text)
    if not match:
        example = DatasetName(
            "MC2025_S1", "minbias-P8-spdroot417-dev.10GeV", ProductionId("", 2025, 1), rules.step_types[0], 1
        ).format(rules)
        raise NamingError("dataset", f"dataset name {text!r} does not follow the pattern, e.g. {example}")
    tag = match["tag"]
    check_physics_tag(tag)
    return DatasetName(match["scope"], tag, _production_from(match), match["step"], int(match["version"]))


_TAG_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def check_physics_tag(tag: str) -> str:
    if not _TAG_RE.fullmatch(tag) or ".." in tag or tag.endswith("."):
        raise NamingError("tag", f"physics tag {tag!r} may contain only letters, digits, '.', '-', '_'")
    return tag


def physics_tag_from_path(exec_path: str, rules: NamingRules) -> str:
    """``/cvmfs/.../minbias-P8-spdroot417-dev.10GeV.V01`` → ``minbias-P8-spdroot417-dev.10GeV``."""
    last = exec_path.rstrip("/").rsplit("/", 1)[-1]
    tag = re.sub(rules.tag_strip_regex, "", last)
    if not tag:
        raise NamingError("tag", f"no physics tag in execution path {exec_path!r}")
    return check_physics_tag(tag)


def check_consistency(
    task: TaskName, dataset: DatasetName, step_type: str, tag: str | None, rules: NamingRules
) -> None:
    """Raise when task name, dataset name and the chosen step type disagree."""
    if task.step != step_type:
        raise NamingError("task_name", f"step {task.step} does not match step type {step_type}")
    if dataset.step != step_type:
        raise NamingError("dataset", f"step {dataset.step} does not match step type {step_type}")
    if dataset.production != task.production:
        raise NamingError(
            "dataset",
            f"production {dataset.production.format(rules)} does not match the task's "
            f"production {task.production.format(rules)}",
        )
    if tag is not None and dataset.tag != tag:
        raise NamingError(
            "dataset", f"physics tag {dataset.tag} does not match the execution path's tag {tag}"
        )


def bunch_task_name(base: TaskName, index: int, bunch_size: int) -> TaskName:
    """Names of bunch members are ``.1 … .N``; a bunch of one keeps the bare name."""
    return base if bunch_size == 1 else TaskName(base.production, base.step, index)


def bunch_dataset_name(base: DatasetName, index: int) -> DatasetName:
    """Member ``index`` (1-based) of a bunch writes version ``base.version + index - 1``."""
    return DatasetName(base.scope, base.tag, base.production, base.step, base.version + index - 1)
