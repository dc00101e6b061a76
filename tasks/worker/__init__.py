"""The worker runtime: the procrastinate App and its worker (`app`), the LLM job, the retry policy,
the middleware that settles failures, the periodic upkeep, and the batched statements.

The only package that touches procrastinate's internals (`app`, with its contract test and
LLMJOBS_WORKER_FAST_PATH to turn them off)."""
