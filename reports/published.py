"""The answered comparison's own table beside ours: its published means, our medians, and the
build-variant ratios of both, side by side.

The published figures are data (``reports/data/published.toml``, with their sources): this module
reads them and types none. They were measured in 2017-2018 on another machine with other versions,
weights and scripts, so every figure of theirs is labelled with its source, year and machine, and
none enters our statistics. Ours are the medians per image of this run's batch-1 latency cells of
the variant and mode the data file names for each published line; a cell that did not run shows why
(a skipped variant's reason: an unavailable build names the error of the attempt).

A ratio is a speedup: the baseline's time over the candidate's (theirs from the published means,
ours from our medians), so above 1 the candidate build is faster, on their machine and on ours.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomllib

from frameworks.result import Result

from . import fmt
from .cells import figures, is_latency, model_title

DATA = Path(__file__).resolve().parent / "data" / "published.toml"
SCHEMA = 1
NOT_IN_RUN = "not in this run"


class PublishedError(ValueError):
    """A malformed published-figures file: one line naming the file and the entry."""


@dataclass(frozen=True)
class Source:
    id: str
    title: str
    year: int
    machine: str
    protocol: str


@dataclass(frozen=True)
class Line:
    """One published line: its label, per model (mean, sd) in seconds, and our counterpart."""

    id: str
    source: str
    label: str
    figures: dict[str, tuple[float, float]]
    ours: tuple[str, str] | None  # (variant, mode)
    ours_note: str
    note: str


@dataclass(frozen=True)
class RatioSpec:
    title: str
    published: tuple[tuple[str, str], ...]  # (baseline line id, candidate line id) per source
    ours: tuple[tuple[str, str], tuple[str, str]]  # baseline and candidate (variant, mode)


@dataclass(frozen=True)
class Published:
    models: tuple[str, ...]
    sources: tuple[Source, ...]
    lines: tuple[Line, ...]
    ratios: tuple[RatioSpec, ...]

    def source(self, source_id: str) -> Source:
        return next(s for s in self.sources if s.id == source_id)

    def line(self, line_id: str) -> Line:
        return next(line for line in self.lines if line.id == line_id)


# --- reading the data file ---------------------------------------------------------------------------


def load_published(path: Path = DATA) -> Published:
    """The published figures, validated: every problem is a one-line ``PublishedError``."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PublishedError(f"{path}: {exc}") from None
    return parse_published(data, str(path))


def parse_published(data: dict[str, Any], where: str = "published") -> Published:
    if data.get("schema") != SCHEMA:
        raise PublishedError(f"{where}: schema must be {SCHEMA}, got {data.get('schema')!r}")
    models = tuple(_strings(data.get("models"), f"{where}: models"))
    sources = tuple(_source(s, f"{where}: sources[{i}]") for i, s in enumerate(_list(data, "sources", where)))
    ids = {s.id for s in sources}
    lines = tuple(_line(r, models, ids, f"{where}: rows[{i}]") for i, r in enumerate(_list(data, "rows", where)))
    line_ids = [line.id for line in lines]
    if len(set(line_ids)) != len(line_ids):
        raise PublishedError(f"{where}: row ids must be unique")
    tables = _list(data, "ratios", where)
    ratios = tuple(_ratio(r, set(line_ids), f"{where}: ratios[{i}]") for i, r in enumerate(tables))
    return Published(models, sources, lines, ratios)


def _list(data: dict[str, Any], key: str, where: str) -> list[dict[str, Any]]:
    value = data.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, dict) for v in value):
        raise PublishedError(f"{where}: {key} must be a non-empty array of tables")
    return value


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise PublishedError(f"{where} must be a non-empty list of strings")
    return value


def _text(table: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or (default is None and not value):
        raise PublishedError(f"{where}: {key} must be a string")
    return value


def _source(t: dict[str, Any], where: str) -> Source:
    year = t.get("year")
    if not isinstance(year, int):
        raise PublishedError(f"{where}: year must be an integer")
    fields = {k: _text(t, k, where) for k in ("id", "title", "machine", "protocol")}
    return Source(year=year, **fields)


def _cell(value: str, where: str) -> tuple[str, str]:
    variant, sep, mode = value.partition("/")
    if not (sep and variant and mode):
        raise PublishedError(f"{where}: {value!r} is not variant/mode")
    return variant, mode


def _line(t: dict[str, Any], models: tuple[str, ...], sources: set[str], where: str) -> Line:
    source = _text(t, "source", where)
    if source not in sources:
        raise PublishedError(f"{where}: unknown source {source!r}")
    found: dict[str, tuple[float, float]] = {}
    for model in models:
        pair = t.get(model)
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, (int, float)) for v in pair)):
            raise PublishedError(f"{where}: {model} must be [mean, sd] in seconds")
        if not pair[0] > 0 or pair[1] < 0:
            raise PublishedError(f"{where}: {model} must have a positive mean and a non-negative sd")
        found[model] = (float(pair[0]), float(pair[1]))
    ours = _cell(_text(t, "ours", where), where) if "ours" in t else None
    ours_note = _text(t, "ours_note", where, "")
    if ours is None and not ours_note:
        raise PublishedError(f"{where}: a row with no `ours` needs an `ours_note` saying why")
    return Line(_text(t, "id", where), source, _text(t, "label", where), found, ours, ours_note,
                _text(t, "note", where, ""))  # fmt: skip


def _ratio(t: dict[str, Any], line_ids: set[str], where: str) -> RatioSpec:
    pairs = t.get("published")
    if not (isinstance(pairs, list) and pairs and all(isinstance(p, list) and len(p) == 2 for p in pairs)):
        raise PublishedError(f"{where}: published must be a list of [baseline, candidate] row ids")
    unknown = sorted({i for p in pairs for i in p} - line_ids)
    if unknown:
        raise PublishedError(f"{where}: unknown row id(s) {', '.join(map(str, unknown))}")
    ours = _strings(t.get("ours"), f"{where}: ours")
    if len(ours) != 2:
        raise PublishedError(f"{where}: ours must be [baseline, candidate]")
    return RatioSpec(_text(t, "title", where), tuple((a, b) for a, b in pairs), (_cell(ours[0], where),
                     _cell(ours[1], where)))  # fmt: skip


# --- the report section ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublishedRow:
    source: str  # "2017 article": which table the line is from
    label: str  # as published: "caffe (mkl, 1.0)"
    theirs: tuple[str, ...]  # per model: "3.01 s (sd 0.130)"
    ours_label: str  # "cpu-caffe-mkl / net", or why there is none
    ours: tuple[str, ...]  # per model: "1.23 s", "skipped: ...", "not in this run"
    flags: tuple[str, ...]  # the published line's known defect, our cell's warnings


@dataclass(frozen=True)
class RatioRow:
    title: str
    published: tuple[tuple[str, tuple[str, ...]], ...]  # (source label, per model "4.62×")
    ours: tuple[str, ...]  # per model "3.10×", or why there is none


@dataclass(frozen=True)
class PublishedSection:
    title: str  # names the years and says: another CPU
    intro: str
    sources: tuple[str, ...]  # one line per source: title, year, machine, protocol
    models: tuple[str, ...]
    model_titles: tuple[str, ...]
    rows: tuple[PublishedRow, ...]
    ratios: tuple[RatioRow, ...]
    legend: str


TITLE = "The published comparison ({years}, another CPU) beside this run"
INTRO = (
    "The comparison this project answers, as its authors published it: mean (sd) of 20 iterations at batch 1, "
    "measured in {years} on another machine, with other versions, weights and scripts (and known defects, "
    "noted per line). Beside each line: our median per image on this machine, for the variant and mode that "
    "runs that framework and build here. Their figures are data (reports/data/published.toml); none enters our "
    "statistics, and the two columns are not one measurement."
)
LEGEND = (
    "Speedup of the candidate build over the baseline build: the baseline's time over the candidate's "
    "(published: of their means; ours: of our medians per image); above 1 the candidate is faster."
)


def source_label(source: Source) -> str:
    return f"{source.year} {'article' if 'article' in source.title else 'README'}"


def published_section(results: Sequence[Result], data: Published | None = None) -> PublishedSection | None:
    """The section, when the run has a batch-1 CPU latency cell of a published model; else None."""
    data = data if data is not None else load_published()
    cells = _our_cells(results, data.models)
    if not cells:
        return None
    years = sorted({s.year for s in data.sources})
    span = "-".join(str(y) for y in (years[0], years[-1])) if len(years) > 1 else str(years[0])
    rows = tuple(_row(line, data, cells) for line in data.lines)
    ratios = tuple(_ratio_row(spec, data, cells) for spec in data.ratios)
    return PublishedSection(
        title=TITLE.format(years=span),
        intro=INTRO.format(years=span),
        sources=tuple(f"{source_label(s)}: {s.title}; machine: {s.machine}; {s.protocol}" for s in data.sources),
        models=data.models,
        model_titles=tuple(model_title(m) for m in data.models),
        rows=rows,
        ratios=ratios,
        legend=LEGEND,
    )


def _our_cells(results: Sequence[Result], models: tuple[str, ...]) -> dict[tuple[str, str, str], Result]:
    """This run's batch-1 CPU latency cells of the published models, by (variant, mode, model)."""
    found: dict[tuple[str, str, str], Result] = {}
    for r in results:
        if is_latency(r) and r.device == "cpu" and r.batch == 1 and r.model in models and r.variant:
            found[(r.variant, r.mode, r.model)] = r
    return found


def _our_median_s(result: Result | None) -> float | None:
    figs = figures(result) if result is not None else None
    return figs.median_ms / 1e3 if figs is not None else None


def _ours_text(result: Result | None) -> str:
    if result is None:
        return NOT_IN_RUN
    median = _our_median_s(result)
    if median is None:
        return f"{result.status}: {result.error or 'no timing recorded'}"
    return f"{fmt.sig(median)} s"


def _row(line: Line, data: Published, cells: dict[tuple[str, str, str], Result]) -> PublishedRow:
    theirs = tuple(f"{fmt.sig(mean)} s (sd {fmt.sig(sd)})" for mean, sd in (line.figures[m] for m in data.models))
    flags = [line.note] if line.note else []
    if line.ours is None:
        return PublishedRow(source_label(data.source(line.source)), line.label, theirs,
                            f"none: {line.ours_note}", tuple("—" for _ in data.models), tuple(flags))  # fmt: skip
    variant, mode = line.ours
    mine = [cells.get((variant, mode, m)) for m in data.models]
    for result in mine:
        if result is not None and result.verified is False:
            flags.append(f"our {model_title(result.model)} cell's output did not match the reference")
    return PublishedRow(source_label(data.source(line.source)), line.label, theirs, f"{variant} / {mode}",
                        tuple(_ours_text(r) for r in mine), tuple(flags))  # fmt: skip


def _ratio_row(spec: RatioSpec, data: Published, cells: dict[tuple[str, str, str], Result]) -> RatioRow:
    published = []
    for baseline, candidate in spec.published:
        base, cand = data.line(baseline), data.line(candidate)
        values = tuple(fmt.ratio(base.figures[m][0] / cand.figures[m][0]) for m in data.models)
        published.append((source_label(data.source(base.source)), values))
    ours = tuple(_our_ratio(spec, model, cells) for model in data.models)
    return RatioRow(spec.title, tuple(published), ours)


def _our_ratio(spec: RatioSpec, model: str, cells: dict[tuple[str, str, str], Result]) -> str:
    """Our speedup for one model, or a dash with why one of the two cells has no median."""
    pair = [(cell, cells.get((*cell, model))) for cell in spec.ours]
    times = [_our_median_s(result) for _, result in pair]
    if times[0] is not None and times[1] is not None:
        return fmt.ratio(times[0] / times[1])
    (variant, mode), result = next(p for p, t in zip(pair, times, strict=True) if t is None)
    return f"— ({variant} / {mode}: {_ours_text(result)})"
