"""``hf-attn serve``: a JSON HTTP API and a web page over one or two models (FastAPI + uvicorn, the `serve` extra)."""
