"""The LLM gateway: model calls through litellm (`calls`, the only module that imports it), the
offline models, output formats, and prompt rendering in a sandbox (`rendering`, `sandbox`).

Front ends import `rendering` and `formats` alone: importing this package loads no litellm."""
