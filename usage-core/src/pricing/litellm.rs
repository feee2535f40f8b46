//! Import of LiteLLM's `model_prices_and_context_window.json` (placeholder).
