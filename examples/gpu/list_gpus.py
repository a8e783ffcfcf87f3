"""List the GPUs the CUDA driver sees, using only the driver library (libcuda.so.1).

The image carries no CUDA: `sifr exec --nv` binds the host driver's libraries into
/.singularity.d/libs, which is on LD_LIBRARY_PATH inside the container.
"""
import ctypes
import sys


def main() -> int:
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError as e:
        print(f"no CUDA driver library in the container ({e}); run with --nv", file=sys.stderr)
        return 2
    rc = cuda.cuInit(0)
    if rc != 0:
        print(f"cuInit failed with CUDA error {rc}", file=sys.stderr)
        return 1
    count = ctypes.c_int()
    rc = cuda.cuDeviceGetCount(ctypes.byref(count))
    if rc != 0:
        print(f"cuDeviceGetCount failed with CUDA error {rc}", file=sys.stderr)
        return 1
    print(f"{count.value} GPU(s)")
    for i in range(count.value):
        dev = ctypes.c_int()
        cuda.cuDeviceGet(ctypes.byref(dev), i)
        name = ctypes.create_string_buffer(256)
        cuda.cuDeviceGetName(name, 256, dev)
        print(f"GPU {i}: {name.value.decode()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
