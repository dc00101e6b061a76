"""Demo data: a realistic month of finished work, so every page has something to show.

`seed(pool)` writes, as the user `demo`, several hundred outputs over the last 30 days across
offline and provider models (tokens, costs and latencies as those models record them), all four
formats, thumbs up and down, provider failures, re-runs and regenerations, two library templates
with versions, a few picked blind comparisons and one finished batch. Most thumbs-down give
reasons (and some thumbs-up "great"), a few carry a comment, some a corrected answer; an LLM
judge has judged the batch and a share of the rated outputs (agreeing with the thumbs most of the
time, not always), and a review queue is half reviewed. Everything is written already finished
(no job is queued) and marked `demo`; `remove(pool)` deletes exactly those rows. The same `seed`
and day give the same month.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from db import analytics as analytics_db
from db import demo as demo_db
from tasks import judges
from tasks.errors import Conflict
from tasks.llm import formats, rendering
from tasks.logs import get_logger

log = get_logger("llmjobs.demo")

USER = "demo"
DAYS = 30
OUTPUTS = 420  # besides comparisons and the batch
SEED = 20241022
HINT = "The database has no outputs yet: `llmjobs seed-demo` loads a demo month of data."


@dataclass(frozen=True)
class ModelProfile:
    """How a model behaves in the demo: share of the work, speed, length, price, reception."""

    name: str
    weight: float
    latency_ms: tuple[int, int]
    completion_tokens: tuple[int, int]
    price_in: float  # dollars per million tokens
    price_out: float
    thumbs_up: float  # of rated answers
    failure_rate: float
    errors: tuple[tuple[str, int], ...] = field(default=())  # (message, attempts)


_OPENAI_ERRORS = (
    (
        "RateLimitError: litellm.RateLimitError: OpenAIException - Rate limit reached for "
        "{model} in organization org-demo on tokens per min (TPM): Limit 200000, Used 199412, "
        "Requested 1380. Please try again in 237ms.",
        6,
    ),
    ("Timeout: litellm.Timeout: Connection timed out after 60.0 seconds.", 6),
    (
        "BadRequestError: litellm.BadRequestError: OpenAIException - This model's maximum "
        "context length is 128000 tokens. However, your messages resulted in 131207 tokens. "
        "Please reduce the length of the messages.",
        1,
    ),
)
_ANTHROPIC_ERRORS = (
    (
        "InternalServerError: litellm.InternalServerError: AnthropicException - "
        '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}',
        6,
    ),
    (
        "RateLimitError: litellm.RateLimitError: AnthropicException - "
        '{"type":"error","error":{"type":"rate_limit_error","message":"Number of request '
        'tokens has exceeded your per-minute rate limit"}}',
        6,
    ),
)
_JSON_ERROR = (
    "the answer is not valid JSON: Expecting value: line 1 column 1 (char 0)",
    1,
)

MODELS = (
    ModelProfile(
        "openai/gpt-4o-mini",
        weight=0.30,
        latency_ms=(700, 3200),
        completion_tokens=(90, 420),
        price_in=0.15,
        price_out=0.60,
        thumbs_up=0.72,
        failure_rate=0.05,
        errors=_OPENAI_ERRORS,
    ),
    ModelProfile(
        "anthropic/claude-3-5-haiku-20241022",
        weight=0.20,
        latency_ms=(900, 4200),
        completion_tokens=(120, 520),
        price_in=0.80,
        price_out=4.00,
        thumbs_up=0.78,
        failure_rate=0.06,
        errors=_ANTHROPIC_ERRORS,
    ),
    ModelProfile(
        "openai/gpt-4o",
        weight=0.10,
        latency_ms=(1800, 7500),
        completion_tokens=(180, 760),
        price_in=2.50,
        price_out=10.00,
        thumbs_up=0.84,
        failure_rate=0.05,
        errors=_OPENAI_ERRORS,
    ),
    ModelProfile(
        "offline/brief",
        weight=0.16,
        latency_ms=(20, 80),
        completion_tokens=(15, 45),
        price_in=0,
        price_out=0,
        thumbs_up=0.42,
        failure_rate=0.0,
    ),
    ModelProfile(
        "offline/verbose",
        weight=0.14,
        latency_ms=(150, 400),
        completion_tokens=(140, 260),
        price_in=0,
        price_out=0,
        thumbs_up=0.55,
        failure_rate=0.0,
    ),
    ModelProfile(
        "offline/flaky",
        weight=0.10,
        latency_ms=(60, 440),
        completion_tokens=(40, 90),
        price_in=0,
        price_out=0,
        thumbs_up=0.30,
        failure_rate=0.12,
        errors=(_JSON_ERROR,),
    ),
)
_BY_NAME = {m.name: m for m in MODELS}

# What the demo user asks: (template, format weights, contexts)
PROMPTS: tuple[tuple[str, dict[str, float], list[dict[str, str]]], ...] = (
    (
        "Explain {{ concept }} to a beginner in three sentences.",
        {"text": 0.5, "markdown": 0.4, "html": 0.1},
        [
            {"concept": c}
            for c in (
                "recursion",
                "compound interest",
                "DNS",
                "photosynthesis",
                "inflation",
                "a hash table",
                "vaccines",
                "index funds",
            )
        ],
    ),
    (
        "Classify the sentiment of this review as positive, neutral or negative, with a one-line "
        "reason: {{ review }}",
        {"json": 0.9, "text": 0.1},
        [
            {"review": r}
            for r in (
                "Arrived two days late but works perfectly.",
                "The battery died after a week. Not buying again.",
                "Does what it says. Nothing more, nothing less.",
                "Best headphones I have owned, and the case is great.",
                "Support never answered my emails.",
            )
        ],
    ),
    (
        "Extract the company, the amount and the due date from this invoice text: {{ invoice }}",
        {"json": 1.0},
        [
            {"invoice": i}
            for i in (
                "Northwind Traders, invoice 4471, total EUR 1,240.00, payable by 15 March.",
                "ACME Corp. Amount due: $89.99. Due: 2024-11-30.",
                "Globex GmbH bills 3.200 EUR for consulting, due within 30 days of 1 June.",
            )
        ],
    ),
    (
        "Draft a polite reply to this customer email, under 120 words:\n\n{{ email }}",
        {"markdown": 0.5, "html": 0.3, "text": 0.2},
        [
            {"email": e}
            for e in (
                "Hi, I was charged twice for my subscription this month. Can you fix it?",
                "Your app logs me out every hour. This is really annoying.",
                "Can I move my plan to annual billing and keep my discount?",
            )
        ],
    ),
)

# The two library templates: (name, versions as (body, note))
LIBRARY = (
    (
        "Ticket summary (demo)",
        (
            ("Summarize this support ticket in two sentences:\n\n{{ ticket }}", "first version"),
            (
                "Summarize this support ticket in two sentences, then name its urgency (low, "
                "medium, high):\n\n{{ ticket }}",
                "adds the urgency",
            ),
        ),
        [
            {"ticket": t}
            for t in (
                "Checkout fails with error 502 for all EU customers since 09:10.",
                "Customer asks how to export invoices as PDF.",
                "Password reset emails arrive after 2 hours.",
                "Feature request: dark mode for the mobile app.",
            )
        ],
    ),
    (
        "Product description (demo)",
        (
            ("Write a product description for {{ product }}.", "first version"),
            ("Write a product description for {{ product }} aimed at {{ audience }}.", "audience"),
            (
                "Write a 60-word product description for {{ product }} aimed at {{ audience }}. "
                "End with one call to action.",
                "shorter, with a call to action",
            ),
        ),
        [
            {"product": p, "audience": a}
            for p, a in (
                ("a standing desk", "remote workers"),
                ("trail running shoes", "beginners"),
                ("a budgeting app", "students"),
                ("noise-cancelling headphones", "frequent flyers"),
            )
        ],
    ),
)

BATCH_REVIEWS = [
    "Great value for the price.",
    "Stopped working after a month.",
    "Okay, but the manual is confusing.",
    "Fast shipping, lovely packaging.",
    "Too loud for an office.",
    "Exactly as described.",
    "The strap broke on day two.",
    "Would buy again.",
    "Colours fade after washing.",
    "Setup took five minutes.",
    "Customer service was helpful.",
    "Overpriced for what it is.",
    "Works with my old charger, nice.",
    "Screen scratches easily.",
    "My kids love it.",
    "Smells of plastic.",
    "Battery lasts all week.",
    "Arrived broken, refund was quick.",
    "Nice, but no English manual.",
    "Perfect gift.",
]

_SENTENCES = (
    "Start from what the reader already knows.",
    "The key idea is simpler than it first looks.",
    "A concrete example makes the rule easy to remember.",
    "It stops working when the assumptions no longer hold.",
    "One next step is to try it on a small case.",
    "Most mistakes come from skipping the first step.",
)


@dataclass(frozen=True)
class DemoSummary:
    """What seeding wrote."""

    user: str
    outputs: int
    comparisons: int
    batches: int
    templates: int
    thumbs_up: int
    thumbs_down: int
    failed: int
    with_reasons: int = 0
    comments: int = 0
    corrected: int = 0
    judged: int = 0
    review_items: int = 0


# Why the demo user gave a thumbs down, by model: (reason, weight). Answers that had to be JSON
# fail as off-format more often.
DOWN_REASONS: dict[str, tuple[tuple[str, float], ...]] = {
    "offline/brief": (("incomplete", 6), ("wrong", 2), ("off-format", 1)),
    "offline/verbose": (("too long", 6), ("incomplete", 1), ("wrong", 1)),
    "offline/flaky": (("off-format", 5), ("wrong", 3), ("incomplete", 1)),
}
PROVIDER_REASONS = (
    ("wrong", 4),
    ("incomplete", 3),
    ("too long", 2),
    ("off-format", 1),
    ("unsafe", 0.3),
)
COMMENTS = {
    "thumbs_down": (
        "Misses the second half of the question.",
        "The numbers do not match the source text.",
        "Asked for three sentences, got a page.",
        "Not valid for our JSON parser: a trailing explanation after the object.",
        "Reads well but the key fact is wrong.",
    ),
    "thumbs_up": (
        "Exactly the tone we want for customers.",
        "Good enough to ship as is.",
        "Use this one as an example for the team.",
    ),
}
CORRECTIONS = {
    "text": "In short: one concrete example first, then the rule in one sentence. Nothing more.",
    "markdown": "- One concrete example first.\n- Then the rule, in one line.\n",
    "html": "<p>One concrete example first, then the rule in one line.</p>",
}

JUDGE = "Answer check (demo)"
JUDGE_MODEL = "openai/gpt-4o-mini"
JUDGE_REASONS = {
    "pass": (
        "Answers the request correctly and in the format asked for.",
        "Complete and concise.",
        "Correct, with nothing missing that matters.",
    ),
    "fail": (
        "Leaves out part of what was asked.",
        "States something that does not follow from the request.",
        "Not in the format the request asks for.",
        "Much longer than the request needs.",
    ),
}
JUDGE_AGREEMENT = 0.82  # how often the judge's verdict matches the person's thumb
JUDGED_SHARE = 0.35  # of the rated outputs
REVIEW_QUEUE = "Flaky answers (demo)"
REVIEW_ITEMS = 16


def _answer(rng: random.Random, fmt: str, prompt: str, sentences: int) -> str:
    picked = [rng.choice(_SENTENCES) for _ in range(sentences)]
    topic = " ".join(prompt.split()[:12])
    if fmt == "json":
        if "sentiment" in prompt:
            label = rng.choice(("positive", "neutral", "negative"))
            return json.dumps({"sentiment": label, "reason": picked[0]})
        if "invoice" in prompt:
            return json.dumps(
                {
                    "company": prompt.split(": ", 1)[-1].split(",")[0][:40],
                    "amount": round(rng.uniform(50, 5000), 2),
                    "due_date": "2024-12-15",
                }
            )
        return json.dumps({"answer": topic, "points": picked})
    if fmt == "markdown":
        return f"## {topic}\n\n" + "\n".join(f"- {s}" for s in picked) + "\n"
    if fmt == "html":
        items = "".join(f"<li>{s}</li>" for s in picked)
        return f"<h3>{topic}</h3>\n<ul>{items}</ul>"
    return " ".join(picked)


def _pick_weighted(rng: random.Random, weights: dict[str, float]) -> str:
    names = list(weights)
    return rng.choices(names, weights=[weights[n] for n in names])[0]


def _when(rng: random.Random, now: datetime) -> datetime:
    """A moment in the last DAYS days (at least an hour ago), mostly in working hours."""
    while True:
        day = now - timedelta(days=rng.randrange(DAYS))
        hour = rng.choices(range(24), weights=[1] * 7 + [4] * 11 + [2] * 6)[0]
        moment = day.replace(hour=hour, minute=rng.randrange(60), second=rng.randrange(60))
        weekend = moment.weekday() >= 5
        if moment < now - timedelta(hours=1) and (not weekend or rng.random() < 0.3):
            return moment


class _Month:
    """Plans the month's outputs as rows ready to insert."""

    def __init__(self, rng: random.Random, now: datetime, user_id: int):
        self.rng, self.now, self.user_id = rng, now, user_id

    def output(
        self,
        *,
        model: str,
        template: str,
        context: dict[str, Any],
        fmt: str,
        created_at: datetime,
        **extra: Any,
    ) -> dict[str, Any]:
        rng, profile = self.rng, _BY_NAME[model]
        prompt = rendering.render(template, context)
        started_at = created_at + timedelta(milliseconds=rng.randrange(80, 2500))
        latency = rng.randint(*profile.latency_ms)
        prompt_tokens = int(len(prompt.split()) * 1.35) + (24 if fmt != "text" else 0)
        row = {
            "user_id": self.user_id,
            "template": template,
            "model": model,
            "context": context,
            "format": fmt,
            "queue": rng.choices(("default", "high", "low"), weights=(8, 1, 1))[0],
            "kind": "original",
            "parent_id": None,
            "prompt": prompt,
            "prompt_tokens": prompt_tokens,
            "started_at": started_at,
            "completed_at": started_at + timedelta(milliseconds=latency),
            "template_version_id": None,
            "comparison_id": None,
            "batch_id": None,
            "batch_row": None,
            "created_at": created_at,
            "feedback": "none",
            **extra,
        }
        fails = extra.pop("failed", None)
        if fails is None:  # offline/flaky fails only where it can: answers that must be JSON
            fails = rng.random() < profile.failure_rate
            fails = fails and (model != "offline/flaky" or fmt == "json")
        if fails and profile.errors:
            message, attempts = rng.choice(profile.errors)
            raw = "Sure! Here is the JSON: {" if model.startswith("offline/") else None
            row.update(
                status="failed",
                error_message=message.replace("{model}", model.split("/")[-1]),
                attempts=attempts,
                raw_response=raw,
                parsed_output=None,
                completion_tokens=None,
                cost=None,
                latency_ms=None,
            )
        else:
            completion_tokens = rng.randint(*profile.completion_tokens)
            raw = _answer(rng, fmt, prompt, max(1, completion_tokens // 60))
            cost = (prompt_tokens * profile.price_in + completion_tokens * profile.price_out) / 1e6
            row.update(
                status="completed",
                error_message=None,
                attempts=1,
                raw_response=raw,
                parsed_output=formats.parse(fmt, raw),
                completion_tokens=completion_tokens,
                cost=Decimal(f"{cost:.8f}"),
                latency_ms=latency,
            )
            if rng.random() < 0.45:  # about half the answers get a thumb
                up = rng.random() < profile.thumbs_up
                row["feedback"] = "thumbs_up" if up else "thumbs_down"
        return row


def _plan_outputs(
    rng: random.Random, month: _Month, library: list[tuple[list[int], list[dict[str, str]]]]
) -> tuple[list[dict[str, Any]], list[tuple[int, dict[str, Any]]]]:
    """The originals, and the re-runs and regenerations as (index of the parent, row)."""
    weights = {m.name: m.weight for m in MODELS}
    originals: list[dict[str, Any]] = []
    for _ in range(OUTPUTS):
        model = _pick_weighted(rng, weights)
        created_at = _when(rng, month.now)
        if rng.random() < 0.3:  # a library template, its latest version more often
            versions, contexts = rng.choice(library)
            index = min(len(versions) - 1, int(rng.random() ** 0.6 * len(versions)))
            version_id, body = versions[index]
            originals.append(
                month.output(
                    model=model,
                    template=body,
                    context=rng.choice(contexts),
                    fmt=rng.choice(("text", "markdown")),
                    created_at=created_at,
                    template_version_id=version_id,
                )
            )
            continue
        template, fmts, contexts = rng.choice(PROMPTS)
        originals.append(
            month.output(
                model=model,
                template=template,
                context=rng.choice(contexts),
                fmt=_pick_weighted(rng, fmts),
                created_at=created_at,
            )
        )
    children: list[tuple[int, dict[str, Any]]] = []
    for index, parent in enumerate(originals):
        roll = rng.random()
        if roll > 0.14:
            continue
        later = parent["created_at"] + timedelta(minutes=rng.randrange(2, 600))
        if later > month.now - timedelta(hours=1):
            continue
        if roll < 0.08 or parent["status"] == "failed":  # the same again
            kind, model, fmt = "re_run", parent["model"], parent["format"]
        else:  # another model or format
            kind = "regenerate"
            model = _pick_weighted(rng, {m.name: m.weight for m in MODELS})
            fmt = parent["format"] if rng.random() < 0.6 else rng.choice(formats.FORMATS)
        children.append(
            (
                index,
                month.output(
                    model=model,
                    template=parent["template"],
                    context=parent["context"],
                    fmt=fmt,
                    created_at=later,
                    kind=kind,
                    template_version_id=parent["template_version_id"],
                ),
            )
        )
    return originals, children


def seed(pool: ConnectionPool, *, now: datetime | None = None, seed: int = SEED) -> DemoSummary:
    """Write the demo month (see the module's description) and refresh the analytics rollup.

    Raises Conflict when demo data is already loaded, or a user named `demo` exists."""
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    rng = random.Random(seed)
    with pool.connection() as conn:
        with conn.transaction():
            found = demo_db.state(conn, USER)
            if found.loaded:
                raise Conflict("demo data is already loaded (remove it with seed-demo --remove)")
            if found.name_taken:
                raise Conflict(f"a user named {USER!r} already exists: demo data needs that name")
            summary = _write(conn, rng, now, random.Random(f"{seed}-explained"))
        # the month only: the worker's periodic refresh keeps the rest up to date
        analytics_db.refresh_rollup(conn, created_after=now - timedelta(days=DAYS + 2))
    log.info("demo data loaded", **summary.__dict__)
    return summary


def _explain(rng: random.Random, rows: list[dict[str, Any]]) -> None:
    """Give the rated rows reasons (most thumbs-down, some thumbs-up "great"), a few comments
    and, on some thumbs-down, a corrected answer."""
    corrections = 0
    for row in rows:
        thumb = row["feedback"]
        if thumb == "thumbs_down" and rng.random() < 0.8:
            choices = DOWN_REASONS.get(row["model"], PROVIDER_REASONS)
            names = [name for name, _ in choices]
            weights = [
                w * (3 if n == "off-format" and row["format"] == "json" else 1) for n, w in choices
            ]
            picked = {rng.choices(names, weights=weights)[0]}
            if rng.random() < 0.3:
                picked.add(rng.choices(names, weights=weights)[0])
            row["feedback_reasons"] = sorted(picked, key=names.index)
        elif thumb == "thumbs_up" and rng.random() < 0.15:
            row["feedback_reasons"] = ["great"]
        if thumb != "none" and rng.random() < 0.06:
            row["feedback_comment"] = rng.choice(COMMENTS[thumb])
        if thumb == "thumbs_down" and (corrections < 3 or rng.random() < 0.08):
            corrected = _correction(row)
            if corrected is not None:
                row["corrected_answer"] = corrected
                corrections += 1


def _correction(row: dict[str, Any]) -> str | None:
    """What the answer should have been: a short fix in the output's format."""
    if row["format"] == "json":
        answer = row["parsed_output"]
        if not isinstance(answer, dict):
            return None
        fixed = dict(answer)
        if "sentiment" in fixed:
            fixed["sentiment"] = "negative" if fixed["sentiment"] != "negative" else "neutral"
        elif "amount" in fixed:
            fixed["amount"] = round(float(fixed["amount"]) + 100, 2)
        else:
            fixed["answer"] = " ".join(row["prompt"].split()[:8])
        return json.dumps(fixed)
    return CORRECTIONS[row["format"]]


def _events(
    rng: random.Random, user_id: int, ids: list[int], rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """One feedback event per rated row: its thumb with the reasons, comment and correction."""
    events = []
    for output_id, row in zip(ids, rows, strict=True):
        if row["feedback"] == "none":
            continue
        changed = ["feedback"]
        for part, column in (
            ("reasons", "feedback_reasons"),
            ("comment", "feedback_comment"),
            ("corrected_answer", "corrected_answer"),
        ):
            if row.get(column):
                changed.append(part)
        events.append(
            {
                "output_id": output_id,
                "user_id": user_id,
                "new_value": row["feedback"],
                "created_at": row["completed_at"] + timedelta(minutes=rng.randrange(1, 240)),
                "reasons": row.get("feedback_reasons", []),
                "comment": row.get("feedback_comment"),
                "corrected_answer": row.get("corrected_answer"),
                "changed": changed,
            }
        )
    return events


def _judged(
    conn: Any, rng: random.Random, month: _Month, judged: list[tuple[int, dict[str, Any]]]
) -> list[dict[str, Any]]:
    """The demo judge and its verdicts on `judged` (id, row): each verdict an ordinary finished
    json output of the judge's model, checked against the verdict schema, agreeing with the
    person's thumb JUDGE_AGREEMENT of the time (and passing most unrated answers)."""
    first = min(row["completed_at"] for _, row in judged)
    judge_id = demo_db.insert_judge(
        conn,
        name=JUDGE,
        model=JUDGE_MODEL,
        rubric=judges.DEFAULT_RUBRIC,
        created_by=month.user_id,
        created_at=first - timedelta(hours=1),
    )
    answers = []
    for _, row in judged:
        if row["feedback"] == "none":
            verdict = "pass" if rng.random() < 0.85 else "fail"
        else:
            agrees = rng.random() < JUDGE_AGREEMENT
            verdict = "pass" if (row["feedback"] == "thumbs_up") == agrees else "fail"
        # what the rubric sees, as a judge run gives it (tasks.judges.rubric_values)
        context = {
            "prompt": row["prompt"],
            "answer": row["raw_response"],
            "corrected_answer": row.get("corrected_answer") or "",
            "context": json.dumps(row["context"], ensure_ascii=False, indent=2, sort_keys=True),
        }
        at = max(row["completed_at"] + timedelta(hours=rng.randrange(1, 48)), first)
        answer = month.output(
            model=JUDGE_MODEL,
            template=judges.DEFAULT_RUBRIC,
            context=context,
            fmt="json",
            created_at=min(at, month.now - timedelta(minutes=30)),
            failed=False,
        )
        raw = json.dumps({"verdict": verdict, "reason": rng.choice(JUDGE_REASONS[verdict])})
        answer.update(
            feedback="none",
            queue="low",
            raw_response=raw,
            parsed_output=json.loads(raw),
            json_schema=judges.VERDICT_SCHEMA,
            schema_valid=True,
            schema_first_try=True,
        )
        answers.append(answer)
    answer_ids = demo_db.insert_outputs(conn, answers)
    demo_db.insert_judge_verdicts(
        conn,
        [
            {
                "judge_id": judge_id,
                "output_id": output_id,
                "judge_output_id": answer_id,
                "created_at": answer["created_at"],
            }
            for (output_id, _), answer_id, answer in zip(judged, answer_ids, answers, strict=True)
        ],
    )
    return answers


def _review_queue(
    conn: Any, rng: random.Random, month: _Month, rated: list[tuple[int, dict[str, Any]]]
) -> int:
    """A review queue of offline/flaky's rated answers, its first half reviewed (each mark the
    thumb and reasons the answer has); how many items it holds."""
    items = [(i, r) for i, r in rated if r["model"] == "offline/flaky"][-REVIEW_ITEMS:]
    if not items:
        return 0
    created_at = min(r["completed_at"] for _, r in items) + timedelta(hours=1)
    queue_id = demo_db.insert_review_queue(
        conn,
        name=REVIEW_QUEUE,
        owner_id=month.user_id,
        scope={"model": "offline/flaky"},
        blind=True,
        created_at=created_at,
    )
    demo_db.insert_review_items(
        conn,
        [
            {"queue_id": queue_id, "output_id": i, "position": n}
            for n, (i, _) in enumerate(items, 1)
        ],
    )
    demo_db.insert_review_marks(
        conn,
        [
            {
                "queue_id": queue_id,
                "output_id": i,
                "user_id": month.user_id,
                "feedback": r["feedback"],
                "reasons": r.get("feedback_reasons", []),
                "reviewed_at": min(
                    created_at + timedelta(minutes=3 * n + rng.randrange(3)),
                    month.now - timedelta(minutes=5),
                ),
            }
            for n, (i, r) in enumerate(items[: len(items) // 2])
        ],
    )
    return len(items)


def _write(conn: Any, rng: random.Random, now: datetime, explained: random.Random) -> DemoSummary:
    """The month's rows; `explained` (a generator of its own, so that the month's outputs stay
    those of the seed) picks the reasons, comments, corrections, verdicts and reviews."""
    start = now - timedelta(days=DAYS)
    user_id = demo_db.insert_user(conn, name=USER, created_at=start - timedelta(days=1))
    month = _Month(rng, now, user_id)

    library = []
    for offset, (name, versions, contexts) in enumerate(LIBRARY):
        made = start + timedelta(days=offset, hours=9)
        template_id = demo_db.insert_template(conn, name=name, owner_id=user_id, created_at=made)
        ids = []
        for number, (body, note) in enumerate(versions, 1):
            at = made + timedelta(days=(number - 1) * 9)
            version_id = demo_db.insert_template_version(
                conn,
                template_id=template_id,
                version=number,
                body=body,
                note=note,
                created_by=user_id,
                created_at=at,
            )
            ids.append((version_id, body))
        library.append((ids, contexts))

    originals, children = _plan_outputs(rng, month, library)
    _explain(explained, originals + [row for _, row in children])
    ids = demo_db.insert_outputs(conn, originals)
    for parent, row in children:
        row["parent_id"] = ids[parent]
    rows = originals + [row for _, row in children]
    ids += demo_db.insert_outputs(conn, [row for _, row in children])

    comparisons, compared = _comparisons(conn, rng, month)
    batch_ids, batch_rows = _batch(conn, rng, month)
    rows += compared + batch_rows

    planned = originals + [r for _, r in children]
    demo_db.insert_feedback_events(conn, _events(rng, user_id, ids, planned))

    rated = [(i, r) for i, r in zip(ids, planned, strict=True) if r["feedback"] != "none"]
    judged = [(i, r) for i, r in rated if explained.random() < JUDGED_SHARE]
    judged += [
        (i, r) for i, r in zip(batch_ids, batch_rows, strict=True) if r["status"] == "completed"
    ]
    verdicts = _judged(conn, explained, _Month(explained, now, user_id), judged)
    queued = _review_queue(conn, explained, month, rated)
    rows += verdicts
    return DemoSummary(
        user=USER,
        outputs=len(rows),
        comparisons=comparisons,
        batches=1,
        templates=len(LIBRARY),
        thumbs_up=sum(r["feedback"] == "thumbs_up" for r in rows),
        thumbs_down=sum(r["feedback"] == "thumbs_down" for r in rows),
        failed=sum(r["status"] == "failed" for r in rows),
        with_reasons=sum(bool(r.get("feedback_reasons")) for r in rows),
        comments=sum(r.get("feedback_comment") is not None for r in rows),
        corrected=sum(r.get("corrected_answer") is not None for r in rows),
        judged=len(verdicts),
        review_items=queued,
    )


COMPARED = (
    ("offline/brief", "offline/verbose"),
    ("openai/gpt-4o-mini", "anthropic/claude-3-5-haiku-20241022"),
    ("openai/gpt-4o-mini", "openai/gpt-4o", "anthropic/claude-3-5-haiku-20241022"),
    ("offline/verbose", "openai/gpt-4o-mini"),
    ("anthropic/claude-3-5-haiku-20241022", "offline/flaky"),
    ("offline/brief", "offline/flaky", "offline/verbose"),
)


def _comparisons(conn: Any, rng: random.Random, month: _Month) -> tuple[int, list[dict]]:
    """A few comparisons, each picked: the better model by its thumbs-up rate, mostly."""
    rows = []
    for number, models in enumerate(COMPARED):
        created_at = _when(rng, month.now)
        blind = number % 2 == 0
        comparison_id = demo_db.insert_comparison(
            conn, user_id=month.user_id, blind=blind, created_at=created_at
        )
        template, fmts, contexts = PROMPTS[number % len(PROMPTS)]
        context, fmt = rng.choice(contexts), _pick_weighted(rng, fmts)
        answers = [
            month.output(
                model=m,
                template=template,
                context=context,
                fmt=fmt,
                created_at=created_at,
                comparison_id=comparison_id,
                failed=False,
            )
            for m in models
        ]
        ids = demo_db.insert_outputs(conn, answers)
        rows += answers
        picked_at = max(a["completed_at"] for a in answers) + timedelta(minutes=2)
        if number == len(COMPARED) - 1:
            pairs = [(a, b, "tie") for i, a in enumerate(ids) for b in ids[i + 1 :]]
        else:
            scores = [_BY_NAME[m].thumbs_up + rng.uniform(-0.15, 0.15) for m in models]
            winner = ids[scores.index(max(scores))]
            pairs = [(winner, other, "a") for other in ids if other != winner]
        demo_db.insert_preferences(
            conn,
            [
                {
                    "comparison_id": comparison_id,
                    "user_id": month.user_id,
                    "output_a": a,
                    "output_b": b,
                    "outcome": outcome,
                    "created_at": picked_at,
                }
                for a, b, outcome in pairs
            ],
        )
    return len(COMPARED), rows


def _batch(conn: Any, rng: random.Random, month: _Month) -> tuple[list[int], list[dict]]:
    """One finished batch: reviews classified by gpt-4o-mini, one row failed."""
    template = PROMPTS[1][0]
    created_at = _when(rng, month.now)
    batch_id = demo_db.insert_batch(
        conn,
        user_id=month.user_id,
        name="reviews-november.csv",
        template=template,
        model="openai/gpt-4o-mini",
        format="json",
        queue="low",
        columns=["review"],
        created_at=created_at,
    )
    rows = [
        month.output(
            model="openai/gpt-4o-mini",
            template=template,
            context={"review": review},
            fmt="json",
            created_at=created_at,
            batch_id=batch_id,
            batch_row=number,
            failed=number == 7,
        )
        for number, review in enumerate(BATCH_REVIEWS, 1)
    ]
    for row in rows:
        row["queue"] = "low"
    return demo_db.insert_outputs(conn, rows), rows


def remove(pool: ConnectionPool) -> dict[str, int]:
    """Delete every row seeding wrote (and nothing else); return how many of each kind."""
    with pool.connection() as conn:
        with conn.transaction():
            counts = demo_db.delete_all(conn)
        analytics_db.refresh_rollup(conn)
    log.info("demo data removed", **counts)
    return counts


def is_loaded(pool: ConnectionPool) -> bool:
    with pool.connection() as conn:
        return demo_db.state(conn, USER).loaded


def hint_if_empty(database: ConnectionPool | str) -> str | None:
    """A line saying how to load demo data, when the database (a pool or a URL) has no output at
    all; None otherwise, and when the database cannot be asked (a hint never stops a start)."""
    try:
        if isinstance(database, str):
            with psycopg.connect(database, row_factory=dict_row) as conn:
                found = demo_db.state(conn, USER)
        else:
            with database.connection() as conn:
                found = demo_db.state(conn, USER)
    except psycopg.Error:
        return None
    return None if found.has_outputs else HINT
