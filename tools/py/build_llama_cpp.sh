#!/usr/bin/env bash
# Builds llama.cpp 0c1e570 (vendored by the PyPI source package llama-cpp-python==0.3.36) into a prefix,
# for the out-of-CI checks in docs/convert.md. Needs cmake (pip install cmake), a C++ compiler, and PyPI.
#
# Usage: tools/py/build_llama_cpp.sh [WORK_DIR] [PREFIX]     (defaults: /tmp/llama, /opt/llama.cpp)
# About 7 minutes on 2 cores. The AMX flags are off because this CPU advertises AMX but llama.cpp's
# AMX Q8_0 kernel crashes on it.
set -euo pipefail
work=${1:-/tmp/llama}
prefix=${2:-/opt/llama.cpp}
mkdir -p "$work"
cd "$work"
if [ ! -f llama_cpp_python-0.3.36.tar.gz ]; then
    # Only the package itself as a source archive; its build dependencies may be wheels.
    pip download --no-deps --no-binary llama-cpp-python llama-cpp-python==0.3.36 -d .
fi
[ -d llama_cpp_python-0.3.36 ] || tar xzf llama_cpp_python-0.3.36.tar.gz
src=$work/llama_cpp_python-0.3.36/vendor/llama.cpp
flags="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release \
    -DGGML_NATIVE=ON -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DCMAKE_C_FLAGS="$flags" -DCMAKE_CXX_FLAGS="$flags" \
    -DCMAKE_INSTALL_PREFIX="$prefix"
cmake --build "$work/build" -j "${JOBS:-2}"
cmake --install "$work/build"
echo "llama.cpp installed in $prefix (converter: $src/convert_hf_to_gguf.py)"
