import subprocess
import sys


def test_import_is_light():
    code = ("import sys, quantscope; heavy = [m for m in ('transformers', 'onnxruntime', 'matplotlib', 'faiss', "
            "'onnx', 'safetensors', 'rich') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
