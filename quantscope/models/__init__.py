"""Built-in loaders for the real models quantscope is demonstrated and tested on (optional extras)."""
