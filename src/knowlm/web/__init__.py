"""The Gradio web UI (`knowlm web`)."""
