"""Derive the simulator's bundled benchmark scores from an LLM Stats snapshot.

Reads a checkout of github.com/JonathanChavezTamales/llm-leaderboard (LLM Stats, CC-BY-4.0),
keeps a fixed set of widely reported benchmarks for the models of the major providers, maps each
model to the genai-prices catalogue ids that price it, and writes one JSON file with sorted keys.

    python scripts/derive_benchmark_scores.py --source PATH_TO_llm-stats \
        --out src/margindash/simulator/data/benchmark_scores.json

Mapping rules (a model may be served under several genai-prices ids, e.g. first party and hosts):

* a genai-prices model is a candidate when its id has the same name as the LLM Stats model once
  route/vendor prefixes and punctuation are ignored (and "-instruct"/"-it" on the LLM Stats
  side), or the same name less a release date when the genai-prices id carries no date (an
  undated alias such as ``gpt-4o`` stands for its dated snapshots; two different dates never
  match);
* a model is also a candidate when the provider's own match rule accepts the LLM Stats id, but
  only if the rule lists the name explicitly or the names agree once dates and "-latest" are
  dropped: loose "starts with"/"contains" rules (e.g. every ``deepseek-r1*`` priced as
  ``deepseek-reasoner``) are rejected and reported;
* ``ALIASES`` adds reviewed mappings the rules above cannot find (host-specific names) and
  ``DENIED`` removes reviewed wrong ones;
* each genai-prices id gets the scores of one model only: an alias beats an explicit rule, which
  beats an exact name, which beats a date-less name; ties go to the newest release.

Scores are LLM Stats' ``normalized_score`` (0-1, falling back to ``score / max_score``) times
100, rounded to two decimals. Where LLM Stats holds several results for one model and benchmark
(different settings, e.g. with and without tools) the lowest is kept as the comparable figure.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib.metadata import version
from itertools import chain
from pathlib import Path
from typing import Any

from genai_prices import data_snapshot

ORGANIZATIONS = ("openai", "anthropic", "google", "mistral", "meta", "deepseek", "qwen", "xai")

# genai-prices providers searched for each model: first parties, then the major hosts.
HOST_PROVIDERS = (
    "openai",
    "anthropic",
    "google",
    "mistral",
    "deepseek",
    "x-ai",
    "azure",
    "aws",
    "groq",
    "together",
    "fireworks",
    "cerebras",
    "openrouter",
)

# Route prefixes tried in front of an LLM Stats id (OpenRouter/Together style "org/model").
ROUTE_PREFIXES: Mapping[str, tuple[str, ...]] = {
    "openai": ("openai/",),
    "anthropic": ("anthropic/",),
    "google": ("google/",),
    "mistral": ("mistralai/",),
    "meta": ("meta-llama/",),
    "deepseek": ("deepseek/", "deepseek-ai/"),
    "qwen": ("qwen/",),
    "xai": ("x-ai/",),
}

# benchmark id in LLM Stats -> display name. Chosen by coverage across the providers above.
BENCHMARKS: Mapping[str, str] = {
    "aime-2024": "AIME 2024",
    "aime-2025": "AIME 2025",
    "gpqa": "GPQA (Diamond where the maker says so)",
    "humaneval": "HumanEval",
    "ifeval": "IFEval",
    "livecodebench": "LiveCodeBench",
    "math": "MATH",
    "math-500": "MATH-500",
    "mmlu": "MMLU",
    "mmlu-pro": "MMLU-Pro",
    "mmmu": "MMMU",
    "swe-bench-verified": "SWE-bench Verified",
}

# Reviewed mappings the name rules cannot find: LLM Stats id -> (provider_id, genai model id).
ALIASES: Mapping[str, tuple[tuple[str, str], ...]] = {
    "gpt-4.5": (("openai", "gpt-4.5-preview"), ("openrouter", "openai/gpt-4.5-preview")),
    "gemini-1.5-flash-8b": (
        ("google", "gemini-flash-1.5-8b"),
        ("openrouter", "google/gemini-flash-1.5-8b"),
    ),
    "claude-haiku-4-5-20251015": (  # LLM Stats dates it 2025-10-15, the API id says 20251001
        ("aws", "global.anthropic.claude-haiku-4-5-20251001-v1:0"),
        ("aws", "regional.anthropic.claude-haiku-4-5-20251001-v1:0"),
    ),
    "claude-opus-4-20250514": (("google", "claude-4-opus"),),
    "claude-sonnet-4-20250514": (("google", "claude-4-sonnet"),),
    "mistral-large-2-2407": (("mistral", "mistral-large"),),
    "ministral-8b-instruct-2410": (("mistral", "ministral-8b"),),
    "pixtral-large": (("openrouter", "mistralai/pixtral-large-2411"),),
    "deepseek-r1": (("aws", "deepseek.r1-v1:0"),),
    "deepseek-v3": (("openrouter", "deepseek/deepseek-chat"),),
    "deepseek-v3-0324": (("deepseek", "deepseek-chat"),),
    "deepseek-v3.1": (("openrouter", "deepseek/deepseek-chat-v3.1"),),
    "llama-3.1-405b-instruct": (("together", "meta-llama/Meta-Llama-3.1-405B-Instruct-Turbo"),),
    "llama-3.1-70b-instruct": (
        ("aws", "meta.llama3-1-70b-instruct-v1:0"),
        ("groq", "llama-3.1-70b-versatile"),
        ("together", "meta-llama/Meta-Llama-3.1-70B-Instruct-Turbo"),
    ),
    "llama-3.1-8b-instruct": (
        ("aws", "meta.llama3-1-8b-instruct-v1:0"),
        ("fireworks", "llama-v3p1-8b-instruct"),
        ("groq", "llama-3.1-8b-instant"),
        ("together", "meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo"),
    ),
    "llama-3.2-11b-instruct": (
        ("aws", "meta.llama3-2-11b-instruct-v1:0"),
        ("openrouter", "meta-llama/llama-3.2-11b-vision-instruct"),
    ),
    "llama-3.2-3b-instruct": (("aws", "meta.llama3-2-3b-instruct-v1:0"),),
    "llama-3.2-90b-instruct": (
        ("aws", "meta.llama3-2-90b-instruct-v1:0"),
        ("openrouter", "meta-llama/llama-3.2-90b-vision-instruct"),
    ),
    "llama-3.3-70b-instruct": (
        ("aws", "meta.llama3-3-70b-instruct-v1:0"),
        ("groq", "llama-3.3-70b-versatile"),
        ("together", "meta-llama/Llama-3.3-70B-Instruct-Turbo"),
    ),
    "llama-4-maverick": (
        ("aws", "meta.llama4-maverick-17b-instruct-v1:0"),
        ("fireworks", "llama4-maverick-instruct-basic"),
        ("groq", "meta-llama/llama-4-maverick-17b-128e-instruct"),
        ("together", "meta-llama/Llama-4-Maverick-17B-128E-Instruct-FP8"),
    ),
    "llama-4-scout": (
        ("aws", "meta.llama4-scout-17b-instruct-v1:0"),
        ("groq", "meta-llama/llama-4-scout-17b-16e-instruct"),
        ("together", "meta-llama/Llama-4-Scout-17B-16E-Instruct"),
    ),
    "qwen3-235b-a22b-instruct-2507": (("openrouter", "qwen/qwen3-235b-a22b-2507"),),
    "qwen2.5-vl-32b": (("openrouter", "qwen/qwen2.5-vl-32b-instruct"),),
    "qwen2.5-vl-7b": (
        ("openrouter", "qwen-2.5-vl-7b-instruct"),
        ("openrouter", "qwen/qwen-2.5-vl-7b-instruct"),
    ),
    "qwen2.5-vl-72b": (
        ("fireworks", "qwen2p5-vl-72b-instruct"),
        ("openrouter", "qwen/qwen-2.5-vl-72b-instruct"),
        ("openrouter", "qwen/qwen2.5-vl-72b-instruct"),
    ),
    "qwen2-72b-instruct": (("openrouter", "qwen/qwen-2-72b-instruct"),),
    "qwen-2.5-coder-7b-instruct": (("openrouter", "qwen/qwen2.5-coder-7b-instruct"),),
    "grok-2": (("openrouter", "x-ai/grok-2-1212"),),
}

# Name matches that are wrong: base (pre-trained) models sharing an instruct model's name.
DENIED: frozenset[tuple[str, str]] = frozenset(
    {("openrouter", "llama-3.1-405b"), ("openrouter", "meta-llama/llama-3.1-405b")}
)

# Strength of the evidence behind a candidate mapping; higher wins a contested genai-prices id.
ALIAS, EXPLICIT_RULE, EXACT_NAME, DATELESS_NAME = 4, 3, 2, 1

_VARIANT_SUFFIX = re.compile(r":[a-z]")  # ":free", ":batch", ":extended", ":thinking" variants
_DATE_SUFFIX = re.compile(r"-(?:\d{8}|\d{4}-\d{2}-\d{2}|\d{2}-\d{2}|\d{4}|0)$")
_LATEST_SUFFIX = re.compile(r"-latest$")


def base_name(ref: str) -> str:
    """A model name without route/vendor prefixes or Bedrock version suffix, lower-case."""
    text = ref.lower().rsplit("/", 1)[-1]
    text = re.sub(r"^(?:regional|global|us|eu|apac)\.", "", text)
    text = re.sub(r"^(?:anthropic|meta|mistral|qwen|openai|google|deepseek)\.", "", text)
    text = re.sub(r"(?:-v\d+)?:\d+$", "", text)
    return re.sub(r"(\d)p(\d)", r"\1.\2", text)  # Fireworks spells "3.1" as "3p1"


def without_date(name: str, *, latest: bool) -> str:
    """Drop release-date suffixes ("-20241022", "-2407", "-0"), and "-latest" if asked."""
    previous = None
    while previous != name:
        previous = name
        name = _DATE_SUFFIX.sub("", name)
        if latest:
            name = _LATEST_SUFFIX.sub("", name)
    return name


def name_variants(model_id: str) -> set[str]:
    """The LLM Stats id's base name, with and without "-instruct"/"-it"."""
    base = base_name(model_id)
    return {base, re.sub(r"-(?:instruct|it)(?=-|$)", "", base)}


def squash(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name)


def explicit_names(clause: Any) -> set[str]:
    """Names a genai-prices match rule accepts by plain equality (not under an AND)."""
    if hasattr(clause, "equals"):
        return {str(clause.equals).lower()}
    if hasattr(clause, "or_"):
        return set().union(*(explicit_names(sub) for sub in clause.or_))
    return set()


@dataclass(frozen=True)
class LlmStatsModel:
    model_id: str
    name: str
    organization: str
    release_date: str
    records: tuple[Mapping[str, Any], ...]


@dataclass
class Candidate:
    provider_id: str
    model_id: str
    strength: int


@dataclass
class ModelMapping:
    model: LlmStatsModel
    candidates: list[Candidate] = field(default_factory=list)


def read_models(source: Path) -> Iterator[LlmStatsModel]:
    """Every model of the chosen organizations, in id order."""
    for organization in ORGANIZATIONS:
        models_dir = source / "data" / "organizations" / organization / "models"
        for model_dir in sorted(p for p in models_dir.iterdir() if p.is_dir()):
            meta = json.loads((model_dir / "model.json").read_text())
            bench_file = model_dir / "benchmarks.json"
            records = json.loads(bench_file.read_text()) if bench_file.exists() else []
            yield LlmStatsModel(
                model_id=meta["model_id"],
                name=meta["name"],
                organization=organization,
                release_date=meta.get("release_date") or meta.get("announcement_date") or "",
                records=tuple(records),
            )


class Resolver:
    """Finds the genai-prices ids that price an LLM Stats model."""

    def __init__(self) -> None:
        self.snapshot = data_snapshot.get_snapshot()
        self.providers = {p.id: p for p in self.snapshot.providers}
        self.rejected: set[str] = set()

    def owned(self, provider_id: str, model_id: str) -> bool:
        return any(m.id == model_id for m in self.providers[provider_id].models)

    def candidates(self, model: LlmStatsModel) -> list[Candidate]:
        """Every usable genai-prices id for the model, with the strongest evidence for each."""
        found: dict[tuple[str, str], int] = {}
        for provider_id, model_id, strength in chain(
            self.alias_matches(model), self.name_matches(model), self.rule_matches(model)
        ):
            key = (provider_id, model_id)
            if _VARIANT_SUFFIX.search(model_id) or key in DENIED or not self.owned(*key):
                continue
            found[key] = max(found.get(key, 0), strength)
        return [Candidate(p, m, s) for (p, m), s in sorted(found.items())]

    def alias_matches(self, model: LlmStatsModel) -> Iterator[tuple[str, str, int]]:
        for provider_id, model_id in ALIASES.get(model.model_id, ()):
            if not self.owned(provider_id, model_id):
                raise SystemExit(f"alias {model.model_id} -> {provider_id}/{model_id} is stale")
            yield provider_id, model_id, ALIAS

    def name_matches(self, model: LlmStatsModel) -> Iterator[tuple[str, str, int]]:
        bases = name_variants(model.model_id)
        exact = {squash(b) for b in bases}
        dateless = {squash(without_date(b, latest=False)) for b in bases}
        for provider_id in HOST_PROVIDERS:
            for info in self.providers[provider_id].models:
                name = base_name(info.id)
                if squash(name) in exact:
                    yield provider_id, info.id, EXACT_NAME
                elif without_date(name, latest=False) == name and squash(name) in dateless:
                    yield provider_id, info.id, DATELESS_NAME

    def rule_matches(self, model: LlmStatsModel) -> Iterator[tuple[str, str, int]]:
        refs = [model.model_id, *(p + model.model_id for p in ROUTE_PREFIXES[model.organization])]
        for provider_id in HOST_PROVIDERS:
            for ref in refs:
                match = self.rule_match(model.model_id, provider_id, ref)
                if match:
                    yield provider_id, *match
                    break

    def rule_match(self, model_id: str, provider_id: str, ref: str) -> tuple[str, int] | None:
        """The provider's own model whose match rule accepts ref, if the rule is specific."""
        info = self.providers[provider_id].find_model(ref)  # no fallback providers
        if info is None:
            return None
        if ref.lower() in explicit_names(info.match):
            return info.id, EXPLICIT_RULE
        target = squash(without_date(base_name(info.id), latest=True))
        if target in {squash(without_date(b, latest=True)) for b in name_variants(model_id)}:
            return info.id, DATELESS_NAME
        self.rejected.add(f"{model_id} -> {provider_id}/{info.id}")
        return None


def choose_score(records: Iterable[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The lowest of several results for one benchmark: the comparable, conservative one."""
    return min(records, key=lambda r: (r["score"], r["model_benchmark_id"]))


def score_entry(record: Mapping[str, Any], max_score: float) -> dict[str, Any]:
    normalized = record.get("normalized_score")
    if normalized is None:
        normalized = record["score"] / max_score
    verified = bool(record.get("verified_by_llmstats"))
    date = record.get("verification_date") if verified else None
    return {
        "date": (date or record["updated_at"])[:10],
        "method": record.get("analysis_method") or None,
        "score": round(float(normalized) * 100, 2),
        "self_reported": bool(record.get("is_self_reported")),
        "source_url": record.get("self_reported_source_link")
        or f"https://llm-stats.com/models/{record['model_id']}",
        "verified": verified,
    }


def model_scores(model: LlmStatsModel, max_scores: Mapping[str, float]) -> dict[str, Any]:
    by_benchmark: dict[str, list[Mapping[str, Any]]] = {}
    for record in model.records:
        if record["benchmark_id"] in BENCHMARKS:
            by_benchmark.setdefault(record["benchmark_id"], []).append(record)
    return {
        bench: score_entry(choose_score(records), max_scores[bench])
        for bench, records in by_benchmark.items()
    }


def assign(mappings: list[ModelMapping]) -> dict[str, str]:
    """Give each contested genai-prices id to one model; returns the losers' reasons."""
    claims: dict[tuple[str, str], list[tuple[ModelMapping, Candidate]]] = {}
    for mapping in mappings:
        for cand in mapping.candidates:
            claims.setdefault((cand.provider_id, cand.model_id), []).append((mapping, cand))
    superseded: dict[str, str] = {}
    for (provider_id, model_id), claimants in claims.items():
        if len(claimants) < 2:
            continue
        claimants.sort(
            key=lambda mc: (mc[1].strength, mc[0].model.release_date, mc[0].model.model_id)
        )
        winner = claimants[-1][0]
        for loser, cand in claimants[:-1]:
            loser.candidates.remove(cand)
            superseded[loser.model.model_id] = (
                f"{provider_id}/{model_id} already carries {winner.model.model_id}"
            )
    return superseded


def read_snapshot_info(source: Path) -> tuple[str | None, str | None]:
    info = source / "SNAPSHOT_INFO.txt"
    if not info.exists():
        return None, None
    match = re.match(r"commit\s+([0-9a-f]{7,40})\s+(\d{4}-\d{2}-\d{2})", info.read_text())
    return (match.group(1), match.group(2)) if match else (None, None)


def derive(source: Path, *, commit: str, snapshot_date: str) -> tuple[dict[str, Any], list[str]]:
    """Build the catalogue document and the lines of the printed summary."""
    benchmarks_dir = source / "data" / "benchmarks"
    bench_meta = {b: json.loads((benchmarks_dir / f"{b}.json").read_text()) for b in BENCHMARKS}
    max_scores = {b: float(meta.get("max_score") or 1.0) for b, meta in bench_meta.items()}
    resolver = Resolver()
    mappings = [ModelMapping(m, resolver.candidates(m)) for m in read_models(source)]
    superseded = assign(mappings)

    models: dict[str, Any] = {}
    unmapped: list[str] = []
    for mapping in mappings:
        model = mapping.model
        scores = model_scores(model, max_scores)
        refs = {(c.provider_id, c.model_id) for c in mapping.candidates}
        if not refs:
            reason = superseded.get(model.model_id, "no genai-prices model of that name")
            unmapped.append(f"{model.organization}/{model.model_id}: {reason}")
            continue
        if not scores:
            unmapped.append(f"{model.organization}/{model.model_id}: no selected benchmark")
            continue
        models[model.model_id] = {
            "genai_prices": [{"model_id": m, "provider_id": p} for p, m in sorted(refs)],
            "llm_stats_url": f"https://llm-stats.com/models/{model.model_id}",
            "name": model.name,
            "organization": model.organization,
            "release_date": model.release_date or None,
            "scores": scores,
        }

    document = {
        "attribution": "LLM Stats (llm-stats.com), CC-BY-4.0",
        "benchmarks": {
            bench: {
                "description": bench_meta[bench].get("description"),
                "llm_stats_url": f"https://llm-stats.com/benchmarks/{bench}",
                "name": name,
            }
            for bench, name in BENCHMARKS.items()
        },
        "changes": (
            "Selected benchmarks only, scores rescaled to 0-100, models mapped to genai-prices "
            "ids; derived by scripts/derive_benchmark_scores.py"
        ),
        "genai_prices_version": version("genai-prices"),
        "license": "CC-BY-4.0",
        "license_url": "https://creativecommons.org/licenses/by/4.0/",
        "models": models,
        "score_date": (
            "the day LLM Stats recorded the number (the day it verified it, for verified ones)"
        ),
        "score_scale": (
            "0-100: LLM Stats normalized_score (0-1, else score / max_score) x 100, rounded to "
            "2 decimals; of several results for one model and benchmark the lowest is kept"
        ),
        "snapshot_date": snapshot_date,
        "source": "https://github.com/JonathanChavezTamales/llm-leaderboard",
        "source_commit": commit,
    }
    return document, summary_lines(models, unmapped, resolver.rejected)


def summary_lines(models: Mapping[str, Any], unmapped: list[str], rejected: set[str]) -> list[str]:
    per_provider: dict[str, int] = {}
    per_org: dict[str, int] = {}
    per_bench: dict[str, int] = {}
    for entry in models.values():
        per_org[entry["organization"]] = per_org.get(entry["organization"], 0) + 1
        for ref in entry["genai_prices"]:
            per_provider[ref["provider_id"]] = per_provider.get(ref["provider_id"], 0) + 1
        for bench in entry["scores"]:
            per_bench[bench] = per_bench.get(bench, 0) + 1
    lines = [f"models kept: {len(models)}"]
    lines += [f"  organization {k}: {v}" for k, v in sorted(per_org.items())]
    lines += [f"  genai-prices provider {k}: {v} ids" for k, v in sorted(per_provider.items())]
    lines += [f"  benchmark {k}: {v} models" for k, v in sorted(per_bench.items())]
    lines.append(f"LLM Stats models not mapped: {len(unmapped)}")
    lines += [f"  {line}" for line in unmapped]
    lines.append(f"loose genai-prices matches rejected: {len(rejected)}")
    lines += [f"  {line}" for line in sorted(rejected)]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True, help="llm-stats checkout")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--source-commit", help="override SNAPSHOT_INFO.txt's commit")
    parser.add_argument("--snapshot-date", help="override SNAPSHOT_INFO.txt's date (YYYY-MM-DD)")
    args = parser.parse_args(argv)

    info_commit, info_date = read_snapshot_info(args.source)
    commit = args.source_commit or info_commit
    snapshot_date = args.snapshot_date or info_date
    if not commit or not snapshot_date:
        parser.error("no SNAPSHOT_INFO.txt in --source: pass --source-commit and --snapshot-date")
    document, summary = derive(args.source, commit=commit, snapshot_date=snapshot_date)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    print("\n".join(summary))
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
