"""The core: number formats, granularity, rounding, specs, and quantize / dequantize / fake_quantize."""
