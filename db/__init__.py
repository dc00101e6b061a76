"""Database layer of LLM Jobs: migrations, named SQL, typed queries, pools, embedded server."""
