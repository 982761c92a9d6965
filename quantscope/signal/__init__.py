"""Signal quantization: ADC simulation, dither, noise shaping, companding, ADPCM, audio files,
rate-distortion sweeps, images. Heavy dependencies (scipy, soundfile, matplotlib) load inside the functions."""

from .adc import ADCResult, adc, adc_step, quantize_samples, sample, sqnr
from .adpcm import adpcm2lin, adpcm_decode, adpcm_encode, lin2adpcm
from .audio import Audio, AudioFileError, read_audio, write_audio
from .companding import alaw_decode, alaw_encode, companded_quantize, g711_roundtrip, ulaw_decode, ulaw_encode
from .dither import DitherResult, dithered_quantize, error_moments
from .image import BitDepthResult, JpegResult, bayer_matrix, jpeg_quantize, jpeg_tables, reduce_bit_depth
from .image_io import check_image, read_image, write_image
from .image_metrics import ImageQuality, ImageRDCurve, image_quality, image_rate_distortion, psnr, ssim
from .palette import PaletteResult, pil_quantize, quantize_palette
from .pipeline import AudioQuantResult, quantize_audio
from .ratedistortion import RDCurve, RDPoint, adc_quantizer, rate_distortion_sweep
from .shaping import SHAPING_FILTERS, ShapingResult, inband_noise_gain, noise_shape
from .spectrum import SineFit, band_power, power_spectrum, sine_fit

__all__ = [
    "ADCResult", "adc", "adc_step", "quantize_samples", "sample", "sqnr",
    "adpcm2lin", "adpcm_decode", "adpcm_encode", "lin2adpcm",
    "Audio", "AudioFileError", "read_audio", "write_audio",
    "alaw_decode", "alaw_encode", "companded_quantize", "g711_roundtrip", "ulaw_decode", "ulaw_encode",
    "DitherResult", "dithered_quantize", "error_moments",
    "BitDepthResult", "JpegResult", "bayer_matrix", "jpeg_quantize", "jpeg_tables", "reduce_bit_depth",
    "check_image", "read_image", "write_image",
    "ImageQuality", "ImageRDCurve", "image_quality", "image_rate_distortion", "psnr", "ssim",
    "PaletteResult", "pil_quantize", "quantize_palette",
    "AudioQuantResult", "quantize_audio",
    "RDCurve", "RDPoint", "adc_quantizer", "rate_distortion_sweep",
    "SHAPING_FILTERS", "ShapingResult", "inband_noise_gain", "noise_shape",
    "SineFit", "band_power", "power_spectrum", "sine_fit",
]
